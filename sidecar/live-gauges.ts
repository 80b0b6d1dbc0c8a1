/**
 * The sidecar's gauges that are computed when scraped, from the live objects
 * (`MetricSources`), so the request path never touches them: endpoint health
 * and the queue each endpoint's server reports, breaker states, bulkhead
 * slots and limits, the degradation mode, buffered bytes, the token and cost
 * budgets and the SLOs' objectives and burn rates. The
 * objects they read say what they offer here (LiveUpstream, LiveSlo); the
 * counters the request path updates are in metrics.ts.
 */
import { Gauge, type Registry } from 'prom-client';
import type { KeptBudget } from './budget-book.js';
import { BURN_WINDOWS, type Bulkhead, type CircuitBreaker, type SliWindow, type Spend, type TokenBudget } from './resilience/index.js';

/** What the scrape-time gauges read of an upstream: its live objects. */
export interface LiveUpstream {
  name: string;
  bulkhead: Bulkhead;
  /** The bounds of the bulkhead's limit (adaptive mode; the fixed limit twice otherwise). */
  limitBounds: { min: number; max: number };
  endpoints: readonly { index: number; health?: { status: string }; queue?: { waiting: number | undefined } }[];
  breakerEntries(): [string, CircuitBreaker][];
}

/** What the SLO gauges read: the policy's SLIs, each with its objective and its window of events. */
export interface LiveSlo {
  readonly policy: string;
  readonly slis: ReadonlyMap<string, { objective: number; window: SliWindow }>;
}

/** What the scrape-time gauges read. */
export interface MetricSources {
  live?: () => Iterable<LiveUpstream>;
  mode?: () => string;
  bufferedBytes?: () => number;
  budgets?: () => Iterable<KeptBudget>;
  slo?: () => LiveSlo | undefined;
}

/** The scrape-time gauges, in `registry`; `modelLabel` is the request counters' model label, shared by the breaker-state gauge. */
export function liveGauges(registry: Registry, sources: MetricSources, modelLabel: (upstream: string, model: string | undefined) => string) {
  const { live = () => [], mode = () => 'normal', bufferedBytes = () => 0, budgets = () => [], slo = () => undefined } = sources;
  /** A gauge of one figure of each live upstream, read when scraped. */
  const perUpstream = (name: string, help: string, read: (u: LiveUpstream) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ['upstream'] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const u of live()) this.set({ upstream: u.name }, read(u));
      },
    });
  /** A gauge of one side of every budget (what it spent, or its limits), in tokens and in cost. */
  const budgetGauge = (name: string, help: string, pick: (b: ReturnType<TokenBudget['snapshot']>) => Spend) =>
    new Gauge({
      name,
      help,
      labelNames: ['scope', 'upstream', 'unit'] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const { scope, upstream = '', budget } of budgets()) {
          const amounts = pick(budget.snapshot());
          this.set({ scope, upstream, unit: 'tokens' }, amounts.tokens);
          this.set({ scope, upstream, unit: 'cost' }, amounts.cost);
        }
      },
    });
  return {
    endpointHealthy: new Gauge({
      name: 'breakwater_endpoint_healthy',
      help: 'Per endpoint (its index in the upstream) with an active health check: 1 healthy, 0 unhealthy or not yet probed.',
      labelNames: ['upstream', 'endpoint'] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const u of live()) for (const e of u.endpoints) if (e.health) this.set({ upstream: u.name, endpoint: String(e.index) }, e.health.status === 'healthy' ? 1 : 0);
      },
    }),
    serverQueue: new Gauge({
      name: 'breakwater_upstream_server_queue',
      help: 'Per endpoint (its index in the upstream) whose healthCheck.metricsPath is read: the requests waiting in its model server\'s own queue, as the server last reported them (no series while unknown).',
      labelNames: ['upstream', 'endpoint'] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const u of live()) {
          for (const e of u.endpoints) {
            const waiting = e.queue?.waiting;
            if (waiting !== undefined) this.set({ upstream: u.name, endpoint: String(e.index) }, waiting);
          }
        }
      },
    }),
    budgetSpent: budgetGauge('breakwater_budget_spent', 'What each token and cost budget spent in its current window (unit tokens or cost), by scope (policy or upstream) and upstream ("" for the policy).', (b) => b.spent),
    budgetLimit: budgetGauge('breakwater_budget_limit', 'Each token and cost budget\'s limit per window (0 = no limit), with the same labels as breakwater_budget_spent.', (b) => b.limits),
    sloObjective: new Gauge({
      name: 'breakwater_slo_objective',
      help: 'The objective of each SLI of the policy, as a ratio (0.999 for 99.9%): what the burn-rate alerts divide by.',
      labelNames: ['policy', 'sli'] as const,
      registers: [registry],
      collect() {
        this.reset();
        const tracker = slo();
        if (tracker) for (const [sli, { objective }] of tracker.slis) this.set({ policy: tracker.policy, sli }, objective);
      },
    }),
    sloBurnRate: new Gauge({
      name: 'breakwater_slo_burn_rate',
      help: 'This sidecar\'s error rate over each window (5m, 30m, 1h, 6h) divided by the SLI\'s error budget: 1 spends it exactly over the SLO window.',
      labelNames: ['policy', 'sli', 'window'] as const,
      registers: [registry],
      collect() {
        this.reset();
        const tracker = slo();
        if (!tracker) return;
        for (const [sli, { objective, window }] of tracker.slis) {
          for (const [name, ms] of Object.entries(BURN_WINDOWS)) this.set({ policy: tracker.policy, sli, window: name }, window.burnRate(ms, objective));
        }
      },
    }),
    breakerState: new Gauge({
      name: 'breakwater_circuit_breaker_state',
      help: 'Breakers in each state (closed, open, half-open): 1 or 0 for a model with a label of its own, a count for "other"; model "*" is an upstream-wide breaker.',
      labelNames: ['upstream', 'model', 'state'] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const u of live()) {
          const counts = new Map<string, Record<string, number>>();
          for (const [key, breaker] of u.breakerEntries()) {
            const scope = u.endpoints.length > 1 ? key.slice(0, key.lastIndexOf('@')) : key; // model@endpoint with several endpoints
            const label = scope === '*' ? '*' : modelLabel(u.name, scope);
            const byState = counts.get(label) ?? { closed: 0, open: 0, 'half-open': 0 };
            byState[breaker.stateName]!++;
            counts.set(label, byState);
          }
          for (const [model, byState] of counts) for (const [state, n] of Object.entries(byState)) this.set({ upstream: u.name, model, state }, n);
        }
      },
    }),
    bulkheadInFlight: perUpstream('breakwater_bulkhead_in_flight', 'Requests holding a bulkhead slot.', (u) => u.bulkhead.active),
    bulkheadQueued: perUpstream('breakwater_bulkhead_queued', 'Requests waiting for a bulkhead slot.', (u) => u.bulkhead.waiting),
    bulkheadLimit: perUpstream('breakwater_bulkhead_limit', 'Requests the bulkhead lets in flight at once now: learnt by the adaptive mode, maxConcurrent in fixed mode.', (u) => u.bulkhead.limit),
    bulkheadLimitMin: perUpstream('breakwater_bulkhead_limit_min', 'The least the bulkhead\'s limit may be (bulkhead.adaptive.min; maxConcurrent in fixed mode).', (u) => u.limitBounds.min),
    bulkheadLimitMax: perUpstream('breakwater_bulkhead_limit_max', 'The most the bulkhead\'s limit may be (bulkhead.adaptive.max; maxConcurrent in fixed mode).', (u) => u.limitBounds.max),
    mode: new Gauge({
      name: 'breakwater_degradation_mode',
      help: '1 for the mode the sidecar is in: normal, degraded or emergency.',
      labelNames: ['mode'] as const,
      registers: [registry],
      collect() {
        for (const m of ['normal', 'degraded', 'emergency']) this.set({ mode: m }, mode() === m ? 1 : 0);
      },
    }),
    bufferedBytes: new Gauge({
      name: 'breakwater_buffered_bytes',
      help: 'Bytes of bodies (requests, plain answers) held in memory now, across all requests (at most limits.maxBufferedBytes).',
      registers: [registry],
      collect() {
        this.set(bufferedBytes());
      },
    }),
  };
}
