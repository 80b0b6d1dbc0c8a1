/**
 * upstream/ — the sidecar's side towards one upstream: its live objects
 * (this file: endpoints, breakers, bulkhead and its adaptive limits, rate
 * limiter, retry budget; the endpoints' adaptive limits: endpoint-limits.ts),
 * what an attempt's answer says of the provider's load (provider-load.ts),
 * the order endpoints are offered an attempt in (balancer.ts), the
 * keep-alive connections to each endpoint (upstream-client.ts), active
 * health probes (health-probe.ts) and reads of a model server's own queue
 * from its metrics (server-queue-probe.ts), the request each tier is sent,
 * with its own credentials (tier-request.ts), an attempt's timers
 * (attempt-timers.ts), and how long an upstream asks to wait
 * (retry-after.ts). What its answers mean is the dialect's
 * (../dialects/, classify.ts there).
 *
 * The live objects behind one upstream: its endpoints (connections, requests
 * in flight, and breakers of their own), rate limiter, bulkhead and retry
 * budget. Each attempt goes to the first endpoint, in the balancer's order,
 * whose breaker admits it (and, with active health checks, that is not
 * unhealthy: see choose()), so an ejected endpoint takes no traffic while
 * others can serve. On a config change, an upstream whose settings did not
 * change keeps them (open breakers stay open); a changed one gets new ones,
 * and its endpoints keep what their health checks had learnt when the same
 * URL is probed as before, and what their adaptive limits had learnt (the
 * requests in flight or queued under the old objects are not counted by the
 * new bulkhead: until they end, up to twice the limit can be in flight).
 */
import { LRUCache } from 'lru-cache';
import type { EndpointConfig, UpstreamConfig } from '../../config/index.js';
import type { LiveUpstream } from '../../live-gauges.js';
import type { Metrics } from '../../metrics.js';
import { Balancer } from './balancer.js';
import { adaptLimits } from './endpoint-limits.js';
import { healthProbe } from './health-probe.js';
import { serverQueueProbe } from './server-queue-probe.js';
import { UpstreamClient } from './upstream-client.js';
import { type AdaptiveLimit, type BreakerPermit, Bulkhead, CircuitBreaker, type Clock, HealthCheck, type HealthStatus, type PriorityClass, RateLimiter, RetryBudget, ServerQueueWatch } from '../../resilience/index.js';

const UPSTREAM_SCOPE = '*';
/** Endpoints that take traffic, in the order they are tried (each group in the balancer's order). */
const SERVED_HEALTH: readonly HealthStatus[] = ['healthy', 'unknown'];

export interface Endpoint {
  readonly index: number;
  readonly config: EndpointConfig;
  readonly client: UpstreamClient;
  /** Attempts in flight (streams until they end). */
  outstanding: number;
  /** The endpoint's active health check, when the upstream has one. */
  health?: HealthCheck;
  /** What its server says of its own queue, when the health check reads its metrics (metricsPath). */
  queue?: ServerQueueWatch;
  /** Its adaptive concurrency limit (bulkhead mode adaptive): the endpoints' limits add up to the bulkhead's. */
  limit?: AdaptiveLimit;
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
  /** The upstream refused a stream's stream_options (an older Azure api-version): its streams are no longer asked for usage. */
  refusesUsageAsk = false;
  private readonly balancer: Balancer<Endpoint>;
  readonly bulkhead: Bulkhead;
  readonly budget: RetryBudget;
  readonly limiter: RateLimiter;
  readonly limitBounds: { min: number; max: number }; // the bulkhead limit's: adaptive mode's, or the fixed limit twice
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
    /** The upstream's settings; replaced in place when only its credential changed (a rotated Secret: see fingerprint). */
    public config: UpstreamConfig,
    /** Identity of the settings these objects were built from. */
    readonly fingerprint: string,
    classes: readonly PriorityClass[],
    private readonly clock: Clock,
    private readonly metrics: Metrics,
    private readonly onTransition: (event: BreakerTransition) => void,
    onHealthChange: (event: HealthChange) => void = () => {},
    /** The live objects of this upstream that these replace, if any: their endpoints' health carries over. */
    replaced?: UpstreamState,
  ) {
    this.endpoints = config.endpoints.map((e, index) => ({ index, config: e, client: new UpstreamClient(e.origin), outstanding: 0 }));
    const check = config.healthCheck;
    if (check) {
      for (const e of this.endpoints) {
        // A reload that changes, say, retry.attempts builds new objects; the endpoint is the same server, and
        // forgetting what its probes said would take it out of service until the next probe answers.
        const carried = replaced?.healthAt(e.config.origin, check.path);
        e.health = new HealthCheck(check, clock, healthProbe(e.client, check.path), (status) => onHealthChange({ upstream: config.name, endpoint: e.config.origin, status }), carried);
        // Requests waiting in the server's own queue: its adaptive limit (if any, set below) holds and is cut gently.
        if (check.metricsPath) e.queue = new ServerQueueWatch(check, clock, serverQueueProbe(e.client, check.metricsPath), (waiting, holdMs) => e.limit?.serverQueue(waiting, holdMs));
      }
    }
    this.balancer = new Balancer(config.loadBalancing, this.endpoints);
    this.bulkhead = new Bulkhead(config.bulkhead, classes, clock);
    this.limitBounds = config.bulkhead.adaptive ?? { min: config.bulkhead.maxConcurrent, max: config.bulkhead.maxConcurrent };
    const adaptive = config.bulkhead.adaptive;
    if (adaptive) {
      const carried = (e: Endpoint) => replaced?.endpoints.find((old) => old.config.origin === e.config.origin && old.config.basePath === e.config.basePath)?.limit;
      adaptLimits(this.endpoints, this.bulkhead, adaptive, clock, (reason) => metrics.limitChanges.inc({ upstream: config.name, reason }), carried);
    }
    this.budget = new RetryBudget(config.retry.budget, clock);
    this.limiter = new RateLimiter(config.rateLimit, clock);
  }

  get name(): string {
    return this.config.name;
  }

  /**
   * The endpoint for the next attempt and its breaker's permit, or how long until one would admit it.
   * Healthy endpoints come first, in the balancer's order; endpoints whose check has not answered yet
   * (added, or probed on a new path, by a reload) come after them; unhealthy ones never. A check that has
   * not answered knows nothing against its endpoint: refusing it would make a reload blackhole traffic
   * that the same upstream without health checks would have served (readiness covers the start).
   */
  choose(model: string | undefined): Choice {
    const order = this.balancer.order();
    let retryAfterMs = Infinity;
    let candidates = 0;
    for (const wanted of SERVED_HEALTH) {
      for (const endpoint of order) {
        if ((endpoint.health?.status ?? 'healthy') !== wanted) continue;
        candidates++;
        const breaker = this.breakerFor(model, endpoint.index);
        const admission = breaker.tryAcquire();
        if (admission.ok) return { ok: true, endpoint, breaker, permit: admission.permit };
        retryAfterMs = Math.min(retryAfterMs, admission.retryAfterMs);
      }
      if (!this.config.healthCheck) break;
    }
    if (candidates === 0) return { ok: false, retryAfterMs: this.config.healthCheck!.intervalMs, unhealthy: true };
    return { ok: false, retryAfterMs };
  }

  /** What the health check of the endpoint at `origin` says, if it probes `path` (else it says nothing of that URL). */
  healthAt(origin: string, path: string): HealthStatus | undefined {
    if (this.config.healthCheck?.path !== path) return undefined;
    return this.endpoints.find((e) => e.config.origin === origin)?.health?.status;
  }

  /** Whether every endpoint's health check has had its first answer (a probe that times out is one). */
  healthKnown(): boolean {
    return this.endpoints.every((e) => e.health?.status !== 'unknown');
  }

  /** Starts the endpoints' health checks, and the reads of their servers' queues (once this upstream's config is in force). */
  startHealthChecks(): void {
    for (const e of this.endpoints) {
      e.health?.start();
      e.queue?.start();
    }
  }

  /** Stops them for good (a drain, or this upstream replaced); each endpoint keeps its last status. */
  stopHealthChecks(): void {
    for (const e of this.endpoints) {
      e.health?.stop();
      e.queue?.stop();
    }
  }

  /** The breaker for a request's model (one per upstream when scope is upstream) at one endpoint. */
  breakerFor(model: string | undefined, endpoint = 0): CircuitBreaker {
    // Models from apps are cut to 256 characters when read (../inbound/read-request.ts), so keys stay small.
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

/**
 * A stable identity for the settings an upstream's live objects depend on. The credential is not one of
 * them: a rotated key takes effect in place, and breakers, bulkhead and health stay as they are.
 */
export function fingerprint(config: UpstreamConfig, classes: readonly PriorityClass[]): string {
  return JSON.stringify([{ ...config, auth: config.auth && { header: config.auth.header } }, classes], (_key, value) => (value instanceof Set ? [...value] : value));
}
