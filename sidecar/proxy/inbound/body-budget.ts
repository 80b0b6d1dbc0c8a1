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
  /** Bytes held now, across all requests (the leases change it). */
  held = 0;

  /** `max()` is read at each take, so a new config's budget applies at once. */
  constructor(readonly max: () => number) {}

  lease(): BodyLease {
    return new Lease(this);
  }
}

/** One request's share: a class, not closures, as one is made per request. */
class Lease implements BodyLease {
  private taken = 0;
  private released = false;

  constructor(private readonly budget: BodyBudget) {}

  take(bytes: number): boolean {
    if (this.released || this.budget.held + bytes > this.budget.max()) return false;
    this.budget.held += bytes;
    this.taken += bytes;
    return true;
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    this.budget.held -= this.taken;
  }
}
