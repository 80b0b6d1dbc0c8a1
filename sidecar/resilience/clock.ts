/** Time as the resilience state machines see it: injectable, so tests drive it by hand. */

export interface Clock {
  /** Milliseconds on a monotonic scale. */
  now(): number;
  /** Milliseconds since the Unix epoch (to read HTTP dates such as Retry-After). */
  wallTime(): number;
  /** Calls `fn` once `ms` have passed by `now()`, never before; the handle cancels it. */
  setTimer(fn: () => void, ms: number): unknown;
  clearTimer(handle: unknown): void;
}

/** Node's timers take at most 2^31−1 ms; a longer delay would fire after 1 ms. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * A timer that calls its function only once `performance.now()` has reached its due time. Node keeps
 * its timers on a clock of whole milliseconds and runs most of them up to ~2 ms before that; a layer
 * comparing `now()` with a deadline its own timer marked (is there time for a retry?) would otherwise
 * still see time left after the timer fired. An early run is re-armed for the rest.
 */
class DueTimer {
  private timeout: NodeJS.Timeout;

  constructor(
    private readonly fn: () => void,
    private readonly due: number,
    delay: number,
  ) {
    this.timeout = this.arm(delay);
  }

  cancel(): void {
    clearTimeout(this.timeout);
  }

  private arm(delay: number): NodeJS.Timeout {
    const timeout = setTimeout(DueTimer.run, delay, this);
    timeout.unref();
    return timeout;
  }

  private static run(timer: DueTimer): void {
    const left = timer.due - performance.now();
    if (left > 0) timer.timeout = timer.arm(left);
    else timer.fn();
  }
}

export const systemClock: Clock = {
  now: () => performance.now(),
  wallTime: () => Date.now(),
  setTimer: (fn, ms) => {
    const delay = Math.min(Math.max(0, ms), MAX_TIMER_MS);
    return new DueTimer(fn, performance.now() + delay, delay);
  },
  clearTimer: (handle) => (handle as DueTimer | undefined)?.cancel(),
};

/** A clock that moves only when told to, for deterministic tests. */
export class ManualClock implements Clock {
  private time = 0;
  private timers = new Map<number, { at: number; fn: () => void }>();
  private nextId = 1;

  /** `epochMs` is the wall time at which the clock starts. */
  constructor(private readonly epochMs = Date.UTC(2026, 0, 1)) {}

  now(): number {
    return this.time;
  }

  wallTime(): number {
    return this.epochMs + this.time;
  }

  setTimer(fn: () => void, ms: number): unknown {
    const id = this.nextId++;
    this.timers.set(id, { at: this.time + Math.max(0, ms), fn });
    return id;
  }

  clearTimer(handle: unknown): void {
    this.timers.delete(handle as number);
  }

  /** Moves time forward, firing due timers in order. */
  advance(ms: number): void {
    const end = this.time + ms;
    for (;;) {
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const entry of this.timers) if (entry[1].at <= end && (!next || entry[1].at < next[1].at)) next = entry;
      if (!next) break;
      this.timers.delete(next[0]);
      this.time = next[1].at;
      next[1].fn();
    }
    this.time = end;
  }
}
