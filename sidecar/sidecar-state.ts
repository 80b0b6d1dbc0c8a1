/**
 * The config in force and the live objects built from it. A new config is
 * applied whole: upstreams whose settings are unchanged keep their live
 * objects; the others get new ones, and the replaced ones close once their
 * in-flight requests finish.
 */
import { MAX_BREAKER_NAME, MAX_REPORTED_OPENINGS, type BreakerCounts, type OpenedBreaker } from '../api/index.js';
import { BudgetBook } from './budget-book.js';
import type { RuntimeConfig } from './config/index.js';
import { Fleet } from './fleet/index.js';
import type { Metrics } from './metrics.js';
import { SloTracker } from './slo-tracker.js';
import { type Clock, DegradationMonitor, type Mode } from './resilience/index.js';
import { ResponseCache } from './proxy/answers/response-cache.js';
import { fingerprint, UpstreamState, type BreakerTransition, type HealthChange } from './proxy/upstream/upstream-state.js';
import { queuePressure } from './proxy/upstream/endpoint-limits.js';

export class SidecarState {
  config: RuntimeConfig | undefined;
  /**
   * Answers kept for the cache tier; replaced (emptied) only when its local settings change (size, TTL,
   * serveFresh). A new shared Redis URL or password (a rotated Secret) only gives it a new Redis client.
   */
  cache = new ResponseCache({ ttlMs: 0, maxEntries: 0, maxBytes: 0, serveFresh: false });
  /** The whole-sidecar mode; replaced (its window emptied) only when its settings change. */
  degradation: DegradationMonitor;
  /** The token and cost budgets; kept across configs, so a new one never gives back what was spent. */
  readonly budgets: BudgetBook;
  /** The shared store and the limits kept for the fleet (fleet/): its budgets are in `budgets`, its rate limits here. */
  readonly fleet: Fleet;
  /** The policy's SLOs, if it has any; replaced (its windows emptied) only when they or the policy change. */
  slo: SloTracker | undefined;
  private degradationSettings = '';
  private upstreams = new Map<string, UpstreamState>();
  /** Set once the first config in force has had its first health probes answered; never unset. */
  private probedOnce = false;

  constructor(
    private readonly clock: Clock,
    private readonly metrics: Metrics,
    private readonly onTransition: (event: BreakerTransition) => void,
    private readonly onModeChange: (from: string, to: string) => void = () => {},
    private readonly onRedisError: (err: Error) => void = () => {},
    private readonly onHealthChange: (event: HealthChange) => void = () => {},
    onStoreError: (err: Error) => void = () => {},
  ) {
    this.fleet = new Fleet(clock, onStoreError);
    this.budgets = new BudgetBook(clock, (what, limits) => this.fleet.budget(what, limits));
    this.degradation = new DegradationMonitor({ windowMs: 60_000, degradedErrorRate: 0, degradedQueueDepth: 0, emergencyErrorRate: 0 }, clock);
  }

  /** The degradation mode now: evaluated when read (by /status, a scrape) as well as per request, so an idle pod does not keep showing the mode of its last request. */
  mode(): Mode {
    return this.degradation.mode(this.queued());
  }

  /** Requests waiting in the upstreams' bulkhead queues, as degraded mode counts them (queuePressure: not behind an adaptive limit still opening). */
  queued(): number {
    let n = 0;
    for (const u of this.upstreams.values()) n += queuePressure(u);
    return n;
  }

  upstream(name: string): UpstreamState | undefined {
    return this.upstreams.get(name);
  }

  live(): Iterable<UpstreamState> {
    return this.upstreams.values();
  }

  /**
   * Puts `config` in force, or throws and changes nothing: every live object
   * it needs is built before any is swapped in, and what was built for a
   * config that fails is closed again.
   */
  apply(config: RuntimeConfig): void {
    const classes = config.priorities.classes;
    const next = new Map<string, UpstreamState>();
    const built: UpstreamState[] = [];
    const cacheRebuilt = !this.cache.keepsAnswersUnder(config.cache);
    const degradationSettings = JSON.stringify(config.degradation.settings);
    let cache = this.cache;
    let degradation = this.degradation;
    try {
      for (const [name, upstream] of config.upstreams) {
        const print = fingerprint(upstream, classes);
        const current = this.upstreams.get(name);
        const live = current?.fingerprint === print ? current : new UpstreamState(upstream, print, classes, this.clock, this.metrics, this.onTransition, this.onHealthChange, current);
        if (live !== current) built.push(live);
        next.set(name, live);
      }
      if (cacheRebuilt) cache = new ResponseCache(config.cache, this.onRedisError);
      if (degradationSettings !== this.degradationSettings) degradation = new DegradationMonitor(config.degradation.settings, this.clock, this.onModeChange);
    } catch (err) {
      for (const upstream of built) upstream.close();
      if (cache !== this.cache) cache.close();
      throw new Error(`config ${config.version.policy} (generation ${config.version.generation}) could not be applied: ${(err as Error).message}`);
    }
    for (const [name, state] of this.upstreams) if (next.get(name) !== state) state.close();
    // An upstream kept as it was takes the new config's credential (all else is the same): a rotated key applies to the next request.
    for (const [name, state] of next) state.config = config.upstreams.get(name)!;
    this.upstreams = next;
    for (const upstream of built) upstream.startHealthChecks();
    if (cache !== this.cache) {
      this.cache.close();
      this.cache = cache;
    } else {
      this.cache.follow(config.cache);
    }
    this.degradation = degradation;
    this.degradationSettings = degradationSettings;
    if (JSON.stringify([config.slo, config.version.policy]) !== JSON.stringify([this.slo?.config, this.slo?.policy])) {
      this.slo = config.slo && new SloTracker(config.slo, config.version.policy, this.clock);
    }
    this.fleet.configure(config);
    this.budgets.configure(config.budget, new Map([...config.upstreams].map(([name, u]) => [name, u.budget])));
    this.config = config;
  }

  /**
   * Whether the sidecar can take traffic, draining aside: a config is in force and its first health
   * probes have answered. Kubernetes starts the app once the sidecar's startup probe (/readyz) passes,
   * so the app's first requests go to endpoints known to be healthy, not to a model server still
   * loading (as Envoy warms a cluster before it serves). It waits for no longer than the probes'
   * timeout: a probe that times out counts as an answer (unhealthy), so a dead endpoint cannot keep
   * the pod unready, and whether an upstream is up is not the sidecar's readiness (an upstream outage
   * must not take every pod out of its Service). Only the first config is waited for: after that a
   * reload never makes a ready pod unready (a policy rollout would pull every pod out of its Service
   * at once); an endpoint a reload adds, or probes on a new path, is tried after the healthy ones
   * until its first probe answers (UpstreamState.choose).
   */
  ready(): boolean {
    if (this.config === undefined) return false;
    this.probedOnce ||= [...this.upstreams.values()].every((u) => u.healthKnown());
    return this.probedOnce;
  }

  /** Breaker states per upstream, as reported to the controller. */
  breakerCounts(): Record<string, BreakerCounts> {
    const out: Record<string, BreakerCounts> = {};
    for (const [name, upstream] of this.upstreams) {
      const counts = { closed: 0, halfOpen: 0, open: 0 };
      for (const [, breaker] of upstream.breakerEntries()) {
        const state = breaker.stateName;
        if (state === 'open') counts.open++;
        else if (state === 'half-open') counts.halfOpen++;
        else counts.closed++;
      }
      out[name] = counts;
    }
    return out;
  }

  /** The breakers that are open or half-open, newest opening first, as a report to the controller names them. */
  openedBreakers(): OpenedBreaker[] {
    const opened: OpenedBreaker[] = [];
    for (const [name, upstream] of this.upstreams) {
      for (const [scope, breaker] of upstream.breakerEntries()) {
        const openedAt = breaker.openedAt;
        if (openedAt !== undefined) opened.push({ upstream: name, breaker: scope.slice(0, MAX_BREAKER_NAME), openedAt: Math.round(openedAt) });
      }
    }
    return opened.sort((a, b) => b.openedAt - a.openedAt).slice(0, MAX_REPORTED_OPENINGS);
  }

  close(): void {
    this.cache.close();
    this.budgets.close();
    this.fleet.close();
    for (const state of this.upstreams.values()) state.close();
  }
}
