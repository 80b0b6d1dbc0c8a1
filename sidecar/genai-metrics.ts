/**
 * The OpenTelemetry GenAI metrics, under their names in Prometheus form
 * (dots to underscores, the unit as a suffix; `{token}` is an annotation and
 * adds none), with the conventions' attributes as labels and their advised
 * buckets: gen_ai.client.token.usage, gen_ai.client.operation.duration and
 * gen_ai.client.operation.time_to_first_chunk (the time to first token), for
 * each request as the app made it (the sidecar is the app's client of the model).
 * Model labels are bounded as every other metric's (metrics.ts). Beside
 * them, what the trace exporter did: spans exported and spans dropped.
 */
import type { Registry } from 'prom-client';
import { CellCounter } from './cell-counter.js';
import { CellHistogram } from './cell-histogram.js';

const TOKEN_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864];
const DURATION_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92];
const TTFT_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];

const GEN_AI_LABELS = ['gen_ai_operation_name', 'gen_ai_provider_name', 'gen_ai_request_model'] as const;

export function genAiMetrics(registry: Registry) {
  return {
    genAiTokenUsage: new CellHistogram({
      name: 'gen_ai_client_token_usage',
      help: 'gen_ai.client.token.usage: tokens used per request, by gen_ai.token.type (input, output).',
      labelNames: [...GEN_AI_LABELS, 'gen_ai_token_type'] as const,
      buckets: TOKEN_BUCKETS,
      registers: [registry],
    }),
    genAiDuration: new CellHistogram({
      name: 'gen_ai_client_operation_duration_seconds',
      help: 'gen_ai.client.operation.duration: time from a request\'s arrival to the last byte of its answer, by error.type ("" for success).',
      labelNames: [...GEN_AI_LABELS, 'error_type'] as const,
      buckets: DURATION_BUCKETS,
      registers: [registry],
    }),
    genAiTimeToFirstToken: new CellHistogram({
      name: 'gen_ai_client_operation_time_to_first_chunk_seconds',
      help: 'gen_ai.client.operation.time_to_first_chunk: time from a streamed request\'s arrival to its first content event (the first token) reaching the app.',
      labelNames: GEN_AI_LABELS,
      buckets: TTFT_BUCKETS,
      registers: [registry],
    }),
    traceSpansExported: new CellCounter({
      name: 'breakwater_trace_spans_exported_total',
      help: 'Spans the OTLP exporter delivered (tracing on).',
      labelNames: [] as const,
      registers: [registry],
    }),
    traceSpansDropped: new CellCounter({
      name: 'breakwater_trace_spans_dropped_total',
      help: 'Spans dropped instead of slowing requests: queue-full (the export queue was full), export-failed (the collector refused or did not answer in time) or collector-down (ended, or queued, during the backoff after a failed export).',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
  };
}
