/**
 * The sidecar's Prometheus instruments, in one registry. Label values come
 * from the policy (upstream names) or are bounded (classes, outcomes); model
 * names come from apps, so only the first MAX_MODELS per upstream, of at most
 * MAX_MODEL_LABEL characters, get a label of their own and the rest share
 * "other" (the breaker-state gauge too, where it counts the breakers). The
 * counters and histograms are cells (cell-counter.ts, cell-histogram.ts): the
 * request path counts without building a label string per call.
 */
import { Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { CellCounter } from './cell-counter.js';
import { CellHistogram } from './cell-histogram.js';
import { genAiMetrics } from './genai-metrics.js';
import { liveGauges, type MetricSources } from './live-gauges.js';

const MAX_MODELS = 32;
const MAX_MODEL_LABEL = 64;
const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

/** Every instrument: the counters and histograms the request path updates, and the gauges read when scraped (live-gauges.ts). */
export function createMetrics(sources: MetricSources = {}) {
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
  const m = {
    registry,
    requests: new CellCounter({
      name: 'breakwater_requests_total',
      help: 'Finished requests by upstream, model, final failure class ("none" for success) and outcome (ok, upstream_error, local_error, cancelled, degraded).',
      labelNames: ['upstream', 'model', 'class', 'outcome'] as const,
      registers: [registry],
    }),
    duration: new CellHistogram({
      name: 'breakwater_request_duration_seconds',
      help: 'Time from request arrival to the last byte of the answer.',
      labelNames: ['upstream', 'outcome'] as const,
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    timeToFirstByte: new CellHistogram({
      name: 'breakwater_time_to_first_byte_seconds',
      help: 'Time from request arrival to the first byte sent to the app (first content event for streams).',
      labelNames: ['upstream'] as const,
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    attempts: new CellCounter({
      name: 'breakwater_upstream_attempts_total',
      help: 'Attempts sent upstream, by the failure class of their outcome ("none" for success, "cancelled" when the app left first).',
      labelNames: ['upstream', 'class'] as const,
      registers: [registry],
    }),
    fallbacks: new CellCounter({
      name: 'breakwater_fallbacks_total',
      help: 'Requests answered by a fallback tier: another upstream (by name), cache or static.',
      labelNames: ['upstream', 'tier'] as const,
      registers: [registry],
    }),
    hedges: new CellCounter({
      name: 'breakwater_hedges_total',
      help: 'Hedges: won (the hedge answered first), lost (the first attempt did), failed (both failed), refused (breaker open), budget (no retry budget left: not sent).',
      labelNames: ['upstream', 'result'] as const,
      registers: [registry],
    }),
    guardBlocks: new CellCounter({
      name: 'breakwater_guard_blocks_total',
      help: 'Requests an input guard blocked before they reached the upstream, by guard name.',
      labelNames: ['upstream', 'guard'] as const,
      registers: [registry],
    }),
    sliEvents: new CellCounter({
      name: 'breakwater_sli_events_total',
      help: 'Requests counted towards the policy\'s SLOs, by SLI (availability, timeToFirstToken) and result (good, bad).',
      labelNames: ['policy', 'sli', 'result'] as const,
      registers: [registry],
    }),
    budgetExhausted: new CellCounter({
      name: 'breakwater_budget_exhausted_total',
      help: 'Requests refused because a token or cost budget was spent, by scope (policy or upstream) and upstream ("" for the policy).',
      labelNames: ['scope', 'upstream'] as const,
      registers: [registry],
    }),
    faults: new CellCounter({
      name: 'breakwater_faults_injected_total',
      help: 'Faults injected into upstream attempts by the policy (kind delay or abort).',
      labelNames: ['upstream', 'kind'] as const,
      registers: [registry],
    }),
    retries: new CellCounter({
      name: 'breakwater_retries_total',
      help: 'Retries made, by the failure class that caused them.',
      labelNames: ['upstream', 'class'] as const,
      registers: [registry],
    }),
    budgetRefusals: new CellCounter({
      name: 'breakwater_retry_budget_refusals_total',
      help: 'Retries not made because the retry budget was spent.',
      labelNames: ['upstream'] as const,
      registers: [registry],
    }),
    breakerTransitions: new CellCounter({
      name: 'breakwater_circuit_breaker_transitions_total',
      help: 'Breaker state changes.',
      labelNames: ['upstream', 'from', 'to'] as const,
      registers: [registry],
    }),
    tunnels: new Gauge({
      name: 'breakwater_websocket_tunnels',
      help: 'WebSocket tunnels (the Realtime API) open now, by upstream.',
      labelNames: ['upstream'] as const,
      registers: [registry],
    }),
    tunnelBytes: new CellCounter({
      name: 'breakwater_websocket_bytes_total',
      help: 'Bytes through WebSocket tunnels, by upstream and direction (to-upstream, to-app).',
      labelNames: ['upstream', 'direction'] as const,
      registers: [registry],
    }),
    bulkheadRejected: new CellCounter({
      name: 'breakwater_bulkhead_rejected_total',
      help: 'Requests the bulkhead turned away, by reason (queue-full, queue-timeout, evicted).',
      labelNames: ['upstream', 'reason'] as const,
      registers: [registry],
    }),
    limitChanges: new CellCounter({
      name: 'breakwater_bulkhead_limit_changes_total',
      help: 'Moves of an adaptive concurrency limit, by reason: slow-start, probe (growth), overload (a 429, 503 or 529), slow-first-token, server-queue (cuts).',
      labelNames: ['upstream', 'reason'] as const,
      registers: [registry],
    }),
    streamRecoveries: new CellCounter({
      name: 'breakwater_stream_recoveries_total',
      help: 'Streams that broke after text reached the app and were recovered or not, by strategy and result (recovered, diverged, failed, refused).',
      labelNames: ['upstream', 'strategy', 'result'] as const,
      registers: [registry],
    }),
    tokens: new CellCounter({
      name: 'breakwater_tokens_total',
      help: 'Tokens reported in upstream answers (gen_ai.client.token.usage), by type input or output.',
      labelNames: ['upstream', 'model', 'type'] as const,
      registers: [registry],
    }),
    ...genAiMetrics(registry),
    ...liveGauges(registry, sources, modelLabel),
  };
  return { ...m, modelLabel };
}

export type Metrics = ReturnType<typeof createMetrics>;
