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
  private readonly onAppAbort = () => this.controller.abort();
  private readonly aborted: Promise<never>;

  constructor(
    private readonly clock: Clock,
    private readonly appSignal: AbortSignal,
  ) {
    if (appSignal.aborted) this.controller.abort();
    else appSignal.addEventListener('abort', this.onAppAbort, { once: true });
    const signal = this.controller.signal;
    this.aborted = new Promise<never>((_, reject) => {
      if (signal.aborted) reject(new Error('attempt aborted'));
      else signal.addEventListener('abort', () => reject(new Error('attempt aborted')), { once: true });
    });
    this.aborted.catch(() => {}); // only ever raced against
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

  /** Aborts the attempt: its upstream request is destroyed. */
  abort(): void {
    this.controller.abort();
  }

  private expire(kind: TimeoutKind): void {
    this.expired ??= kind;
    this.controller.abort();
  }
}
