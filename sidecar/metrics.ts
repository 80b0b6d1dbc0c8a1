/**
 * The sidecar's Prometheus instruments, in one registry. Label values come
 * from the policy (upstream names) or are bounded (classes, outcomes); model
 * names come from apps, so only the first MAX_MODELS per upstream, of at most
 * MAX_MODEL_LABEL characters, get a label of their own and the rest share
 * "other" (the breaker-state gauge too, where it counts the breakers).
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { KeptBudget } from './budget-book.js';
import { BURN_WINDOWS, type SloTracker } from './slo-tracker.js';
import type { Bulkhead, CircuitBreaker, Spend, TokenBudget } from './resilience/index.js';

/** What the scrape-time gauges read: the upstreams' live objects. */
export interface LiveUpstream {
  name: string;
  bulkhead: Bulkhead;
  endpoints: readonly { index: number; health?: { status: string } }[];
  breakerEntries(): [string, CircuitBreaker][];
}

const MAX_MODELS = 32;
const MAX_MODEL_LABEL = 64;
const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

/** Gauges are computed when scraped, from `live()`, so the request path never touches them. */
/** What the scrape-time gauges read. */
export interface MetricSources {
  live?: () => Iterable<LiveUpstream>;
  mode?: () => string;
  bufferedBytes?: () => number;
  budgets?: () => Iterable<KeptBudget>;
  slo?: () => SloTracker | undefined;
}

export function createMetrics(sources: MetricSources = {}) {
  const { live = () => [], mode = () => 'normal', bufferedBytes = () => 0, budgets = () => [], slo = () => undefined } = sources;
  const registry = new Registry();
  const models = new Map<string, Set<string>>();
  /** The label value for a model: itself while few are known for the upstream and it is short, else "other". */
  const modelLabel = (upstream: string, model: string | undefined): string => {
    if (!model) return 'none';
    let known = models.get(upstream);
    if (!known) models.set(upstream, (known = new Set()));
    if (known.has(model)) return model;
    if (known.size >= MAX_MODELS || model.length > MAX_MODEL_LABEL) return 'other';
    known.add(model);
    return model;
  };
  collectDefaultMetrics({ register: registry, prefix: 'breakwater_process_' });
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
  const m = {
    registry,
    requests: new Counter({
      name: 'breakwater_requests_total',
      help: 'Finished requests by upstream, model, final failure class ("none" for success) and outcome (ok, upstream_error, local_error, cancelled, degraded).',
      labelNames: ['upstream', 'model', 'class', 'outcome'] as const,
      registers: [registry],
    }),
    duration: new Histogram({
      name: 'breakwater_request_duration_seconds',
      help: 'Time from request arrival to the last byte of the answer.',
      labelNames: ['upstream', 'outcome'] as const,
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    timeToFirstByte: new Histogram({
      name: 'breakwater_time_to_first_byte_seconds',
      help: 'Time from request arrival to the first byte sent to the app (first content event for streams).',
      labelNames: ['upstream'] as const,
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    attempts: new Counter({
      name: 'breakwater_upstream_attempts_total',
      help: 'Attempts sent upstream, by the failure class of their outcome ("none" for success, "cancelled" when the app left first).',
      labelNames: ['upstream', 'class'] as const,
      registers: [registry],
    }),
    fallbacks: new Counter({
      name: 'breakwater_fallbacks_total',
      help: 'Requests answered by a fallback tier: another upstream (by name), cache or static.',
      labelNames: ['upstream', 'tier'] as const,
      registers: [registry],
    }),
    hedges: new Counter({
      name: 'breakwater_hedges_total',
      help: 'Hedges: won (the hedge answered first), lost (the first attempt did), failed (both failed), refused (breaker open), budget (no retry budget left: not sent).',
      labelNames: ['upstream', 'result'] as const,
      registers: [registry],
    }),
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
    guardBlocks: new Counter({
      name: 'breakwater_guard_blocks_total',
      help: 'Requests an input guard blocked before they reached the upstream, by guard name.',
      labelNames: ['upstream', 'guard'] as const,
      registers: [registry],
    }),
    budgetSpent: budgetGauge('breakwater_budget_spent', 'What each token and cost budget spent in its current window (unit tokens or cost), by scope (policy or upstream) and upstream ("" for the policy).', (b) => b.spent),
    budgetLimit: budgetGauge('breakwater_budget_limit', 'Each token and cost budget\'s limit per window (0 = no limit), with the same labels as breakwater_budget_spent.', (b) => b.limits),
    sliEvents: new Counter({
      name: 'breakwater_sli_events_total',
      help: 'Requests counted towards the policy\'s SLOs, by SLI (availability, timeToFirstToken) and result (good, bad).',
      labelNames: ['policy', 'sli', 'result'] as const,
      registers: [registry],
    }),
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
    budgetExhausted: new Counter({
      name: 'breakwater_budget_exhausted_total',
      help: 'Requests refused because a token or cost budget was spent, by scope (policy or upstream) and upstream ("" for the policy).',
      labelNames: ['scope', 'upstream'] as const,
      registers: [registry],
    }),
    faults: new Counter({
      name: 'breakwater_faults_injected_total',
      help: 'Faults injected into upstream attempts by the policy (kind delay or abort).',
      labelNames: ['upstream', 'kind'] as const,
      registers: [registry],
    }),
    retries: new Counter({
      name: 'breakwater_retries_total',
      help: 'Retries made, by the failure class that caused them.',
      labelNames: ['upstream', 'class'] as const,
      registers: [registry],
    }),
    budgetRefusals: new Counter({
      name: 'breakwater_retry_budget_refusals_total',
      help: 'Retries not made because the retry budget was spent.',
      labelNames: ['upstream'] as const,
      registers: [registry],
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
    breakerTransitions: new Counter({
      name: 'breakwater_circuit_breaker_transitions_total',
      help: 'Breaker state changes.',
      labelNames: ['upstream', 'from', 'to'] as const,
      registers: [registry],
    }),
    bulkheadInFlight: new Gauge({
      name: 'breakwater_bulkhead_in_flight',
      help: 'Requests holding a bulkhead slot.',
      labelNames: ['upstream'] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const u of live()) this.set({ upstream: u.name }, u.bulkhead.active);
      },
    }),
    bulkheadQueued: new Gauge({
      name: 'breakwater_bulkhead_queued',
      help: 'Requests waiting for a bulkhead slot.',
      labelNames: ['upstream'] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const u of live()) this.set({ upstream: u.name }, u.bulkhead.waiting);
      },
    }),
    tunnels: new Gauge({
      name: 'breakwater_websocket_tunnels',
      help: 'WebSocket tunnels (the Realtime API) open now, by upstream.',
      labelNames: ['upstream'] as const,
      registers: [registry],
    }),
    tunnelBytes: new Counter({
      name: 'breakwater_websocket_bytes_total',
      help: 'Bytes through WebSocket tunnels, by upstream and direction (to-upstream, to-app).',
      labelNames: ['upstream', 'direction'] as const,
      registers: [registry],
    }),
    bulkheadRejected: new Counter({
      name: 'breakwater_bulkhead_rejected_total',
      help: 'Requests the bulkhead turned away, by reason (queue-full, queue-timeout, evicted).',
      labelNames: ['upstream', 'reason'] as const,
      registers: [registry],
    }),
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
    streamRecoveries: new Counter({
      name: 'breakwater_stream_recoveries_total',
      help: 'Streams that broke after text reached the app and were recovered or not, by strategy and result (recovered, diverged, failed, refused).',
      labelNames: ['upstream', 'strategy', 'result'] as const,
      registers: [registry],
    }),
    tokens: new Counter({
      name: 'breakwater_tokens_total',
      help: 'Tokens reported in upstream answers (gen_ai.client.token.usage), by type input or output.',
      labelNames: ['upstream', 'model', 'type'] as const,
      registers: [registry],
    }),
  };
  return { ...m, modelLabel };
}

export type Metrics = ReturnType<typeof createMetrics>;
