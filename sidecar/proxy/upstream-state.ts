/**
 * The live objects behind one upstream: its endpoints (connections, requests
 * in flight, and breakers of their own), rate limiter, bulkhead and retry
 * budget. Each attempt goes to the first endpoint, in the balancer's order,
 * whose breaker admits it (and, with active health checks, that is healthy),
 * so an ejected endpoint takes no traffic while others can serve. On a config change, an upstream whose settings did not
 * change keeps them (open breakers stay open); a changed one gets new ones.
 */
import { LRUCache } from 'lru-cache';
import type { EndpointConfig, UpstreamConfig } from '../config/index.js';
import type { LiveUpstream, Metrics } from '../metrics.js';
import { healthProbe } from './health-probe.js';
import { UpstreamClient } from './upstream-client.js';
import { type BreakerPermit, Bulkhead, CircuitBreaker, type Clock, HealthCheck, type HealthStatus, type PriorityClass, RateLimiter, RetryBudget } from '../resilience/index.js';

const UPSTREAM_SCOPE = '*';

export interface Endpoint {
  readonly index: number;
  readonly config: EndpointConfig;
  readonly client: UpstreamClient;
  /** Attempts in flight (streams until they end). */
  outstanding: number;
  /** The endpoint's active health check, when the upstream has one. */
  health?: HealthCheck;
}

export type Choice =
  | { ok: true; endpoint: Endpoint; breaker: CircuitBreaker; permit: BreakerPermit }
  /** `unhealthy`: no endpoint is healthy (else every breaker refused). */
  | { ok: false; retryAfterMs: number; unhealthy?: boolean };

export interface HealthChange {
  upstream: string;
  endpoint: string;
  status: HealthStatus;
}

export interface BreakerTransition {
  upstream: string;
  /** Model, or "*" for the upstream-wide breaker. */
  scope: string;
  from: string;
  to: string;
  reason: string;
}
/** Breakers kept per upstream in model scope; the least recently used closed ones beyond this are forgotten. */
const MAX_MODEL_BREAKERS = 256;
/** Breakers that are not closed are never forgotten for churn, up to this many per upstream (then the oldest goes). */
const MAX_PINNED_BREAKERS = 4096;

export class UpstreamState implements LiveUpstream {
  readonly endpoints: Endpoint[];
  private turn = 0;
  /** Smooth weighted round-robin state (as nginx does it), one per endpoint. */
  private readonly currentWeights: number[];
  readonly bulkhead: Bulkhead;
  readonly budget: RetryBudget;
  readonly limiter: RateLimiter;
  /**
   * A breaker the LRU evicts while open or half-open moves to `pinned`, so
   * model churn cannot send traffic back to a failing upstream; it leaves
   * once it closes.
   */
  private readonly pinned = new Map<string, CircuitBreaker>();
  private readonly breakers = new LRUCache<string, CircuitBreaker>({
    max: MAX_MODEL_BREAKERS,
    dispose: (breaker, key, reason) => {
      if (reason !== 'evict' || breaker.stateName === 'closed') return;
      if (this.pinned.size >= MAX_PINNED_BREAKERS) this.pinned.delete(this.pinned.keys().next().value!);
      this.pinned.set(key, breaker);
    },
  });

  constructor(
    readonly config: UpstreamConfig,
    /** Identity of the settings these objects were built from. */
    readonly fingerprint: string,
    classes: readonly PriorityClass[],
    private readonly clock: Clock,
    private readonly metrics: Metrics,
    private readonly onTransition: (event: BreakerTransition) => void,
    onHealthChange: (event: HealthChange) => void = () => {},
  ) {
    this.endpoints = config.endpoints.map((e, index) => ({ index, config: e, client: new UpstreamClient(e.origin), outstanding: 0 }));
    const check = config.healthCheck;
    if (check) {
      for (const e of this.endpoints) {
        e.health = new HealthCheck(check, clock, healthProbe(e, check.path), (status) => onHealthChange({ upstream: config.name, endpoint: e.config.origin, status }));
      }
    }
    this.currentWeights = config.endpoints.map(() => 0);
    this.bulkhead = new Bulkhead(config.bulkhead, classes, clock);
    this.budget = new RetryBudget(config.retry.budget, clock);
    this.limiter = new RateLimiter(config.rateLimit, clock);
  }

  get name(): string {
    return this.config.name;
  }

  /** Endpoints in the order the balancer prefers them for the next attempt. */
  private order(): Endpoint[] {
    const all = this.endpoints;
    if (all.length === 1) return all;
    switch (this.config.loadBalancing) {
      case 'round-robin': {
        const start = this.turn++ % all.length;
        return [...all.slice(start), ...all.slice(0, start)];
      }
      case 'weighted': {
        const total = all.reduce((sum, e) => sum + e.config.weight, 0);
        all.forEach((e, i) => (this.currentWeights[i]! += e.config.weight));
        const best = all.reduce((a, b) => (this.currentWeights[b.index]! > this.currentWeights[a.index]! ? b : a));
        this.currentWeights[best.index]! -= total;
        return [best, ...all.filter((e) => e !== best)];
      }
      case 'least-outstanding': {
        const start = this.turn++ % all.length; // ties rotate
        return [...all.slice(start), ...all.slice(0, start)].sort((a, b) => a.outstanding - b.outstanding);
      }
    }
  }

  /** The endpoint for the next attempt and its breaker's permit, or how long until one would admit it. */
  choose(model: string | undefined): Choice {
    let retryAfterMs = Infinity;
    let healthy = 0;
    for (const endpoint of this.order()) {
      if (endpoint.health && endpoint.health.status !== 'healthy') continue;
      healthy++;
      const breaker = this.breakerFor(model, endpoint.index);
      const admission = breaker.tryAcquire();
      if (admission.ok) return { ok: true, endpoint, breaker, permit: admission.permit };
      retryAfterMs = Math.min(retryAfterMs, admission.retryAfterMs);
    }
    if (healthy === 0) return { ok: false, retryAfterMs: this.config.healthCheck!.intervalMs, unhealthy: true };
    return { ok: false, retryAfterMs };
  }

  /** Starts the endpoints' health checks (once this upstream's config is in force). */
  startHealthChecks(): void {
    for (const e of this.endpoints) e.health?.start();
  }

  /** Stops them for good (a drain, or this upstream replaced); each endpoint keeps its last status. */
  stopHealthChecks(): void {
    for (const e of this.endpoints) e.health?.stop();
  }

  /** The breaker for a request's model (one per upstream when scope is upstream) at one endpoint. */
  breakerFor(model: string | undefined, endpoint = 0): CircuitBreaker {
    // Models from apps are cut to 256 characters when read (read-request.ts), so keys stay small.
    const scope = this.config.breaker.scope === 'model' && model ? model : UPSTREAM_SCOPE;
    // With one endpoint the key is the scope alone; with several, the endpoint is part of it.
    return this.breakerAt(this.endpoints.length > 1 ? `${scope}@${endpoint}` : scope);
  }

  /** The breaker with scope key `key` (as breakerEntries() names them), made when there is none. */
  breakerAt(key: string): CircuitBreaker {
    let breaker = this.breakers.get(key) ?? this.pinned.get(key);
    if (!breaker) {
      const upstream = this.config.name;
      breaker = new CircuitBreaker(this.config.breaker, this.clock, (from, to, reason) => {
        if (to === 'closed') this.pinned.delete(key);
        this.metrics.breakerTransitions.inc({ upstream, from, to });
        this.onTransition({ upstream, scope: key, from, to, reason });
      });
      this.breakers.set(key, breaker);
    }
    return breaker;
  }

  /** Breakers by scope key ("*" for the upstream-wide one). */
  breakerEntries(): [string, CircuitBreaker][] {
    return [...this.breakers.entries(), ...this.pinned.entries()];
  }

  resetBreakers(): void {
    for (const [, breaker] of this.breakerEntries()) breaker.reset();
  }

  /** Stops the health checks, and closes the connections once the requests in flight on them have finished. */
  close(): void {
    this.stopHealthChecks();
    if (this.bulkhead.active === 0) return this.endpoints.forEach((e) => e.client.close());
    setTimeout(() => this.close(), 100).unref();
  }
}

/** A stable identity for the settings an upstream's live objects depend on. */
export function fingerprint(config: UpstreamConfig, classes: readonly PriorityClass[]): string {
  return JSON.stringify([config, classes], (_key, value) => (value instanceof Set ? [...value] : value));
}
