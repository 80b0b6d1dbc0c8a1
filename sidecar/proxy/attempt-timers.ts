/**
 * The timers of one attempt, all aborting the same controller, which the
 * app's going away aborts too. Whichever fires first names the timeout.
 * `settled()` bounds any wait of the attempt by that abort, so the attempt
 * ends on time whatever the peer does (some peers make Node's client go
 * silent: an unrequested 101 destroys the socket without an event). The
 * stream-idle timer is lazy: `touch()` only notes the time, and the timer
 * re-arms for the rest when it comes due, so a stream's events set no timers.
 */
import type { Clock } from '../resilience/index.js';

export type TimeoutKind = 'first-byte' | 'attempt' | 'total' | 'stream-idle';

export class AttemptTimers {
  readonly controller = new AbortController();
  expired: TimeoutKind | undefined;
  private readonly handles = new Map<TimeoutKind, unknown>();
  private readonly onAppAbort = () => this.abort();
  /** The waits in settled(), each rejected if the attempt is aborted first. */
  private readonly waits = new Set<(err: Error) => void>();
  private idleMs = 0;
  private lastTouch = 0;

  constructor(
    private readonly clock: Clock,
    private readonly appSignal: AbortSignal,
  ) {
    if (appSignal.aborted) this.abort();
    else appSignal.addEventListener('abort', this.onAppAbort, { once: true });
  }

  /** `work`, or a rejection as soon as the attempt is aborted (by a timer or the app), whichever comes first. */
  settled<T>(work: Promise<T>): Promise<T> {
    if (this.controller.signal.aborted) {
      work.catch(() => {}); // given up on
      return Promise.reject(new Error('attempt aborted'));
    }
    return new Promise<T>((resolve, reject) => {
      this.waits.add(reject);
      work.then(
        (value) => {
          this.waits.delete(reject);
          resolve(value);
        },
        (err: unknown) => {
          this.waits.delete(reject);
          reject(err);
        },
      );
    });
  }

  /** Arms the stream-idle timer: it expires `ms` after the last touch(). */
  armIdle(ms: number): void {
    this.idleMs = ms;
    this.touch();
    this.arm('stream-idle', ms);
  }

  /** The stream is alive now: the idle timer counts from here. */
  touch(): void {
    this.lastTouch = this.clock.now();
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
    for (const reject of this.waits) reject(new Error('attempt aborted'));
    this.waits.clear();
  }

  private expire(kind: TimeoutKind): void {
    if (kind === 'stream-idle') {
      const idleLeft = this.lastTouch + this.idleMs - this.clock.now();
      if (idleLeft > 0) return this.arm(kind, idleLeft); // touched since armed: not idle yet
    }
    this.expired ??= kind;
    this.abort();
  }
}
