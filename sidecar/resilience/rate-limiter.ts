/**
 * Client-side rate limits for one upstream (policy `rateLimit`): token buckets
 * for requests and for LLM tokens per minute, each holding at most ten
 * seconds' worth so load is smoothed rather than let through in one burst.
 * A request reserves its estimated tokens, at most a bucket's worth; the
 * estimate is corrected once the answer reports its usage, so the bucket can
 * run into debt and slow the next, by at most a minute's worth: no one
 * request (a max_tokens of 1e12, a huge reported usage) can shut the
 * upstream for longer.
 */
import type { Clock } from './clock.js';

export interface RateLimitSettings {
  requestsPerMinute: number;
  tokensPerMinute: number;
}

const BURST_MS = 10_000;
/** The deepest debt a bucket runs into, in milliseconds of refill. */
const MAX_DEBT_MS = 60_000;

class Bucket {
  private level: number;
  private at: number;
  readonly capacity: number;
  private readonly perMs: number;

  constructor(
    perMinute: number,
    private readonly clock: Clock,
  ) {
    this.perMs = perMinute / 60_000;
    this.capacity = Math.max(1, perMinute * (BURST_MS / 60_000));
    this.level = this.capacity;
    this.at = clock.now();
  }

  private refill(): void {
    const now = this.clock.now();
    this.level = Math.min(this.capacity, this.level + (now - this.at) * this.perMs);
    this.at = now;
  }

  /** Milliseconds until `amount` (capped at capacity) is available. */
  waitFor(amount: number): number {
    this.refill();
    const needed = Math.min(amount, this.capacity);
    return this.level >= needed ? 0 : (needed - this.level) / this.perMs;
  }

  take(amount: number): void {
    this.refill();
    this.level = Math.min(this.capacity, Math.max(this.level - amount, -MAX_DEBT_MS * this.perMs));
  }
}

export class RateLimiter {
  private readonly requests: Bucket | undefined;
  private readonly tokens: Bucket | undefined;

  constructor(settings: RateLimitSettings, clock: Clock) {
    this.requests = settings.requestsPerMinute > 0 ? new Bucket(settings.requestsPerMinute, clock) : undefined;
    this.tokens = settings.tokensPerMinute > 0 ? new Bucket(settings.tokensPerMinute, clock) : undefined;
  }

  get enabled(): boolean {
    return this.requests !== undefined || this.tokens !== undefined;
  }

  /** What a request estimated at `tokens` reserves: at most a bucket's worth. */
  reservation(tokens: number): number {
    return this.tokens ? Math.min(tokens, this.tokens.capacity) : tokens;
  }

  /** Takes one request and `tokens` (a reservation) now and returns 0, or returns how long to wait (taking nothing). */
  tryTake(tokens: number): number {
    const wait = Math.max(this.requests?.waitFor(1) ?? 0, this.tokens?.waitFor(tokens) ?? 0);
    if (wait > 0) return wait;
    this.requests?.take(1);
    this.tokens?.take(tokens);
    return 0;
  }

  /** Corrects a reservation once the actual usage is known (positive: more was used than reserved). */
  adjust(tokens: number): void {
    if (tokens !== 0) this.tokens?.take(tokens);
  }
}
