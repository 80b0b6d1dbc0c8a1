/**
 * The timers of one attempt, all aborting it, as the app's going away does
 * too. Whichever fires first names the timeout. What the attempt holds (its
 * upstream request, its body's reader) hangs on `onAbort`: plain callbacks,
 * not an AbortSignal, whose listeners cost every request an EventTarget and
 * a stream finisher in Node's client. Every wait of the attempt ends on its
 * abort, so the attempt ends on time whatever the peer does (some peers make
 * Node's client go silent: an unrequested 101 destroys the socket without an
 * event). The stream-idle timer is lazy: `touch()` only notes the time, and
 * the timer re-arms for the rest when it comes due, so a stream's events set
 * no timers.
 */
import type { AbortWatch, Clock } from '../../resilience/index.js';

export type TimeoutKind = 'first-byte' | 'attempt' | 'total' | 'stream-idle';

/** What an attempt's parts hang on its abort. */
export interface AbortHooks {
  /** Calls `listener` (which must not throw) once when the attempt is aborted, at once if it was. */
  onAbort(listener: () => void): void;
}

export class AttemptTimers implements AbortHooks {
  expired: TimeoutKind | undefined;
  aborted = false;
  private readonly handles = new Map<TimeoutKind, unknown>();
  private readonly onAppAbort = () => this.abort();
  /** What the abort calls: the attempt's parts and their waits. */
  private listeners: (() => void)[] = [];
  private idleMs = 0;
  private lastTouch = 0;

  constructor(
    private readonly clock: Clock,
    private readonly appSignal: AbortWatch,
  ) {
    if (appSignal.aborted) this.abort();
    else appSignal.addEventListener('abort', this.onAppAbort, { once: true });
  }

  onAbort(listener: () => void): void {
    if (this.aborted) listener();
    else this.listeners.push(listener);
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
    this.stopTimers();
    this.appSignal.removeEventListener('abort', this.onAppAbort);
  }

  /** Aborts the attempt: its upstream request is destroyed, and every wait of it ends. Each listener runs once. */
  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    this.stopTimers(); // whatever aborted it, no timeout is left to name
    const listeners = this.listeners;
    this.listeners = [];
    for (const listener of listeners) listener();
  }

  private stopTimers(): void {
    for (const handle of this.handles.values()) this.clock.clearTimer(handle);
    this.handles.clear();
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
