/**
 * A rate limit kept for the fleet (`rateLimit.scope: fleet`): requests and
 * tokens per minute across the pods, counted in clock-aligned slots of ten
 * seconds, each allowing its sixth of the minute's rate (rounded so that the
 * six add up to it), through a lease counter in the shared store. So every
 * clock minute holds at most the rate, any 60 s at most the rate and one
 * slot more, and at most ten seconds' worth goes at once, as a pod's bucket
 * allows. The same surface as a pod's RateLimiter, but a take may wait for
 * the store (at most 50 ms).
 */
import type { RateLimitSettings } from '../resilience/index.js';
import { LeaseCounter, type CounterDeps, type CounterSpec } from './lease-counter.js';

export const SLOT_MS = 10_000;
const SLOTS_PER_MINUTE = 6;
/** What the fleet's pods hold of a slot beyond what they take: at most a tenth of it, together. */
const MAX_LEASE_SHARE = 0.1;

/** The part of `perMinute` that the slot starting at `start` allows. */
export function slotLimit(perMinute: number, start: number): number {
  const i = Math.floor(start / SLOT_MS) % SLOTS_PER_MINUTE;
  return Math.floor((perMinute * (i + 1)) / SLOTS_PER_MINUTE) - Math.floor((perMinute * i) / SLOTS_PER_MINUTE);
}

export class FleetRateLimiter {
  private readonly counter: LeaseCounter;

  constructor(
    private settings: RateLimitSettings,
    deps: CounterDeps,
    private readonly key: (slotStart: number) => string,
  ) {
    this.counter = new LeaseCounter(this.spec(), deps, 2);
  }

  get enabled(): boolean {
    return this.settings.requestsPerMinute > 0 || this.settings.tokensPerMinute > 0;
  }

  reconfigure(settings: RateLimitSettings): void {
    this.settings = settings;
    this.counter.reconfigure(this.spec());
  }

  /** What a request estimated at `tokens` reserves: at most a slot's worth. */
  reservation(tokens: number): number {
    const most = Math.ceil(this.settings.tokensPerMinute / SLOTS_PER_MINUTE);
    return this.settings.tokensPerMinute > 0 ? Math.min(tokens, most) : tokens;
  }

  /** Takes one request and `tokens` now and gives 0, or gives how long to wait (taking nothing); may wait for the store first. */
  tryTake(tokens: number): number | Promise<number> {
    const amount = [1, tokens];
    const admission = this.counter.take(amount);
    const settle = (a: Awaited<typeof admission>) => {
      if (!a.ok) return Math.max(1, a.retryAfterMs);
      this.counter.settle(amount, amount); // a request counts once it is let through
      return 0;
    };
    return admission instanceof Promise ? admission.then(settle) : settle(admission);
  }

  /** Corrects a take once the actual usage is known (positive: more was used than taken). */
  adjust(tokens: number): void {
    if (tokens !== 0) this.counter.settle([0, 0], [0, tokens]);
  }

  view() {
    return this.counter.view();
  }

  close(): void {
    this.counter.close();
  }

  private spec(): CounterSpec {
    const { requestsPerMinute, tokensPerMinute } = this.settings;
    const limit = (perMinute: number, start: number) => (perMinute > 0 ? slotLimit(perMinute, start) : Infinity);
    return { windowMs: SLOT_MS, limits: (start) => [limit(requestsPerMinute, start), limit(tokensPerMinute, start)], key: this.key, maxLeaseShare: MAX_LEASE_SHARE };
  }
}
