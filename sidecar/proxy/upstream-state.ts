/**
 * The live objects behind one upstream: its connections, rate limiter,
 * bulkhead, retry budget and breakers. On a config change, an upstream whose settings did not
 * change keeps them (open breakers stay open); a changed one gets new ones.
 */
import { LRUCache } from 'lru-cache';
import type { UpstreamConfig } from '../config/runtime-config.js';
import type { LiveUpstream, Metrics } from '../metrics.js';
import { UpstreamClient } from './upstream-client.js';
import { Bulkhead, type PriorityClass } from '../resilience/bulkhead.js';
import { CircuitBreaker } from '../resilience/circuit-breaker.js';
import type { Clock } from '../resilience/clock.js';
import { RateLimiter } from '../resilience/rate-limiter.js';
import { RetryBudget } from '../resilience/retry-budget.js';

const UPSTREAM_SCOPE = '*';

export interface BreakerTransition {
  upstream: string;
  /** Model, or "*" for the upstream-wide breaker. */
  scope: string;
  from: string;
  to: string;
  reason: string;
}
/** Breakers kept per upstream in model scope; the least recently used beyond this are forgotten. */
const MAX_MODEL_BREAKERS = 256;

export class UpstreamState implements LiveUpstream {
  readonly client: UpstreamClient;
  readonly bulkhead: Bulkhead;
  readonly budget: RetryBudget;
  readonly limiter: RateLimiter;
  private readonly breakers = new LRUCache<string, CircuitBreaker>({ max: MAX_MODEL_BREAKERS });

  constructor(
    readonly config: UpstreamConfig,
    /** Identity of the settings these objects were built from. */
    readonly fingerprint: string,
    classes: readonly PriorityClass[],
    private readonly clock: Clock,
    private readonly metrics: Metrics,
    private readonly onTransition: (event: BreakerTransition) => void,
  ) {
    this.client = new UpstreamClient(config.origin);
    this.bulkhead = new Bulkhead(config.bulkhead, classes, clock);
    this.budget = new RetryBudget(config.retry.budget, clock);
    this.limiter = new RateLimiter(config.rateLimit, clock);
  }

  get name(): string {
    return this.config.name;
  }

  /** The breaker for a request's model (one per upstream when scope is upstream). */
  breakerFor(model: string | undefined): CircuitBreaker {
    const key = this.config.breaker.scope === 'model' && model ? model : UPSTREAM_SCOPE;
    let breaker = this.breakers.get(key);
    if (!breaker) {
      const upstream = this.config.name;
      breaker = new CircuitBreaker(this.config.breaker, this.clock, (from, to, reason) => {
        this.metrics.breakerTransitions.inc({ upstream, from, to });
        this.onTransition({ upstream, scope: key, from, to, reason });
      });
      this.breakers.set(key, breaker);
    }
    return breaker;
  }

  /** Breakers by scope key ("*" for the upstream-wide one). */
  breakerEntries(): [string, CircuitBreaker][] {
    return [...this.breakers.entries()];
  }

  resetBreakers(): void {
    for (const breaker of this.breakers.values()) breaker.reset();
  }

  /** Closes the connections once the requests in flight on them have finished. */
  close(): void {
    if (this.bulkhead.active === 0) return this.client.close();
    setTimeout(() => this.close(), 100).unref();
  }
}

/** A stable identity for the settings an upstream's live objects depend on. */
export function fingerprint(config: UpstreamConfig, classes: readonly PriorityClass[]): string {
  return JSON.stringify([config, classes], (_key, value) => (value instanceof Set ? [...value] : value));
}
