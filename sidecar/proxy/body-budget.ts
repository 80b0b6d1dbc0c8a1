/**
 * The memory budget for bodies, shared by all requests (limits.maxBufferedBytes):
 * each request takes bytes through its own lease as its body arrives (all at
 * once when it declares its length) and as plain answers are read, and gives
 * them all back when it ends, exactly once. A take that would go past the
 * budget fails: the request is refused rather than buffered, so slow uploads
 * or large answers cannot grow the heap past it.
 */
export interface BodyLease {
  /** Takes `bytes` more for this request; false (and nothing taken) if the budget has no room. */
  take(bytes: number): boolean;
  /** Gives back everything this lease took; later calls do nothing. */
  release(): void;
}

export class BodyBudget {
  private held = 0;

  /** `max()` is read at each take, so a new config's budget applies at once. */
  constructor(private readonly max: () => number) {}

  /** Bytes held now, across all requests. */
  get bytes(): number {
    return this.held;
  }

  lease(): BodyLease {
    let taken = 0;
    let released = false;
    return {
      take: (bytes) => {
        if (released || this.held + bytes > this.max()) return false;
        this.held += bytes;
        taken += bytes;
        return true;
      },
      release: () => {
        if (released) return;
        released = true;
        this.held -= taken;
      },
    };
  }
}
