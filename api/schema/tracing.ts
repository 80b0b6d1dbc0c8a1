/**
 * spec.tracing: OpenTelemetry traces of the pod's LLM calls (off by
 * default). The policy says whether, how much and what; where the spans go
 * is the platform's, in the standard OTEL_* environment variables the
 * injector gives the sidecar (the chart's `tracing` values, or the pod's own).
 */
import { Type } from '@sinclair/typebox';

/** A percentage, 0 to 100 with up to 3 decimals, or empty. */
const SAMPLING_PATTERN = '^(|100(\\.0{1,3})?|[0-9]{1,2}(\\.[0-9]{1,3})?)$';

export const TracingSchema = Type.Object(
  {
    enabled: Type.Boolean({
      default: false,
      description:
        'Trace every LLM call: a server span per request, a span per tier the chain tries and a client span per attempt (hedges and recoveries included), with the OpenTelemetry GenAI attributes and what the resilience layers decided, exported over OTLP to the endpoint in OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT. OTEL_SDK_DISABLED=true (the chart\'s, or the app container\'s the sidecar takes its OTEL_* from) keeps it off. Turned on or off without a restart.',
    }),
    sampling: Type.String({
      pattern: SAMPLING_PATTERN,
      maxLength: 7,
      default: '',
      description:
        'Percentage of new traces recorded (requests whose app sent no sampled traceparent), such as 10 or 0.5; a request whose app sent a traceparent follows its sampled flag. Empty: as OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG say (parentbased_always_on when unset).',
    }),
    propagate: Type.Boolean({
      default: true,
      description: 'Send each attempt\'s trace context (traceparent, tracestate) to the upstream, so its spans join the trace; false forwards the app\'s own, untouched.',
    }),
    content: Type.Object(
      {
        record: Type.Boolean({ default: false, description: 'Record prompts (gen_ai.input.messages, on the request\'s span) and answers (gen_ai.output.messages, on each attempt\'s span): their text only, never headers or other fields.' }),
        maxChars: Type.Integer({ minimum: 1, maximum: 65536, default: 2048, description: 'Characters of each recorded attribute at most (a request\'s prompt, each attempt\'s answer), as recorded: the JSON of the messages, roles and escapes included.' }),
      },
      { additionalProperties: false, default: {}, description: 'Prompts and answers in spans: off unless the policy opts in, and capped.' },
    ),
  },
  {
    additionalProperties: false,
    default: {},
    description:
      'OpenTelemetry tracing of the pod\'s LLM calls (opt-in). Spans never hold credentials or headers; prompts and answers only with content.record. Exported in batches through a bounded queue that drops (breakwater_trace_spans_dropped_total) rather than slow a request.',
  },
);
