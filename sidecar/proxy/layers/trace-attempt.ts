/**
 * The attempt's span (tracing, when the policy turns it on): a client span
 * per attempt, hedges and recovery attempts included, inside its tier's span;
 * the upstream is sent the attempt's trace context (traceparent, tracestate)
 * in place of the app's, unless the policy says not to (tracing.propagate):
 * the app's tracestate goes only with the trace it belongs to (a request
 * whose traceparent was missing or invalid starts a new trace, without it).
 * A recorded stream's events are read as they pass for its model, finish and,
 * opted in, its text (../../tracing/stream-tap.ts). It ends with the attempt.
 */
import { endAttempt, startAttempt } from '../../tracing/attempt-span.js';
import { StreamFacts, tapStream } from '../../tracing/stream-tap.js';
import { enabledWhen, type AttemptRequest, type Layer } from '../handler.js';
import { holding } from '../holding.js';
import type { TraceScope } from '../trace-scope.js';

/** `headers` with the app's trace context replaced by `span`'s. */
function withContextOf(span: TraceScope, headers: AttemptRequest['headers']): AttemptRequest['headers'] {
  const out: AttemptRequest['headers'] = {};
  for (const key in headers) if (key !== 'traceparent' && key !== 'tracestate') out[key] = headers[key];
  return Object.assign(out, span.headers());
}

export const traceAttempt: Layer<AttemptRequest> = enabledWhen<AttemptRequest>(
  (config) => config.traced,
  (inner) => (req, ctx) => {
    if (!ctx.trace) return inner(req, ctx);
    const span = startAttempt(ctx.trace, req);
    const sent = span.propagates ? { ...req, headers: withContextOf(span, req.headers) } : req;
    const facts = span.recording ? new StreamFacts(span.content?.maxChars) : undefined;
    return holding(
      () => inner(sent, { ...ctx, trace: span }).then((o) => (facts && o.kind === 'stream' ? { ...o, body: tapStream(o.body, facts) } : o)),
      (end) => endAttempt(span, end, ctx.dialect, facts),
    );
  },
);
