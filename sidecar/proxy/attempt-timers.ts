/**
 * The timers of one attempt, all aborting the same controller, which the
 * app's going away aborts too. Whichever fires first names the timeout.
 * `settled()` bounds any wait of the attempt by that abort, so the attempt
 * ends on time whatever the peer does (some peers make Node's client go
 * silent: an unrequested 101 destroys the socket without an event).
 */
import type { Clock } from '../resilience/index.js';

export type TimeoutKind = 'first-byte' | 'attempt' | 'total' | 'stream-idle';

export class AttemptTimers {
  readonly controller = new AbortController();
  expired: TimeoutKind | undefined;
  private readonly handles = new Map<TimeoutKind, unknown>();
  private readonly onAppAbort = () => this.abort();
  private rejectAborted: (err: Error) => void = () => {};
  /** Rejects once the attempt is aborted; settled() races work against it. */
  private readonly aborted = new Promise<never>((_, reject) => (this.rejectAborted = reject));

  constructor(
    private readonly clock: Clock,
    private readonly appSignal: AbortSignal,
  ) {
    this.aborted.catch(() => {}); // only ever raced against
    if (appSignal.aborted) this.abort();
    else appSignal.addEventListener('abort', this.onAppAbort, { once: true });
  }

  /** `work`, or a rejection as soon as the attempt is aborted (by a timer or the app), whichever comes first. */
  settled<T>(work: Promise<T>): Promise<T> {
    return Promise.race([work, this.aborted]);
  }

  arm(kind: TimeoutKind, ms: number): void {
    this.disarm(kind);
    this.handles.set(kind, this.clock.setTimer(() => this.expire(kind), Math.max(0, ms)));
  }

  disarm(kind: TimeoutKind): void {
    const handle = this.handles.get(kind);
    if (handle !== undefined) this.clock.clearTimer(handle);
    this.handles.delete(kind);
  }

  /** Stops every timer and forgets the app's signal. */
  dispose(): void {
    for (const handle of this.handles.values()) this.clock.clearTimer(handle);
    this.handles.clear();
    this.appSignal.removeEventListener('abort', this.onAppAbort);
  }

  /** Aborts the attempt: its upstream request is destroyed, and every wait in settled() ends. */
  abort(): void {
    if (this.controller.signal.aborted) return;
    this.controller.abort();
    this.rejectAborted(new Error('attempt aborted'));
  }

  private expire(kind: TimeoutKind): void {
    this.expired ??= kind;
    this.abort();
  }
}
