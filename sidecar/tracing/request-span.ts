/**
 * The request's server span: started when the request has been read (a child
 * of the app's span when it sent a traceparent), ended once the answer is
 * written, with what the app got: the status, who answered (the fallback
 * tier), attempts, recoveries, the hedge's result, the sidecar's mode, the
 * usage and the time to first token; the prompt only when the policy opts in.
 */
import { firstHeader } from '../../lib/index.js';
import type { IncomingHttpHeaders } from 'node:http';
import type { Delivery } from '../proxy/inbound/write-outcome.js';
import type { ProxyRequest, ServedContext } from '../proxy/handler.js';
import type { RequestTracer, TraceScope } from '../proxy/trace-scope.js';
import { promptOf } from './content.js';
import { BW, bounded, GEN_AI, operationOf, pathOf, providerOf, spanName } from './genai.js';

/** The request spans of streamed requests (gen_ai.response.time_to_first_chunk is a stream's). */
const streamed = new WeakSet<TraceScope>();

/** Starts the trace of `req`, continuing the app's trace context from its headers. */
export function startRequest(tracer: RequestTracer, headers: IncomingHttpHeaders, req: ProxyRequest): TraceScope {
  const operation = operationOf(req.appPath);
  const span = tracer.start(spanName(operation, req.model), firstHeader(headers, 'traceparent'), firstHeader(headers, 'tracestate'), {
    [GEN_AI.operation]: operation,
    [GEN_AI.provider]: providerOf(req.upstream.config),
    [GEN_AI.requestModel]: bounded(req.model),
    [GEN_AI.requestMaxTokens]: req.maxTokens,
    [GEN_AI.httpMethod]: bounded(req.method, 16),
    [GEN_AI.urlPath]: pathOf(req.appPath),
    [BW.upstream]: req.upstream.config.name,
    [GEN_AI.requestStream]: req.stream,
  });
  if (span.content && span.recording) span.set({ [GEN_AI.inputMessages]: promptOf(req.body, span.content) });
  if (req.stream) streamed.add(span);
  return span;
}

/** Ends the request's span with what was delivered to the app. */
export function endRequest(span: TraceScope, ctx: ServedContext, d: Delivery): void {
  const { attempts, recoveries, hedge, mode } = ctx.report;
  const answered = d.outcome === 'ok' || d.outcome === 'degraded';
  const relayed = d.outcome !== 'local_error' && d.status < 400;
  span.set({
    [GEN_AI.httpStatus]: d.status,
    [BW.outcome]: d.outcome,
    [BW.failureClass]: d.failure === 'none' ? undefined : d.failure,
    [BW.code]: bounded(d.code, 64),
    // Who answered, when a tier other than the addressed upstream did (not the last one that failed).
    [BW.fallbackTier]: d.tier === 'primary' || !answered ? undefined : d.tier,
    [BW.attempts]: attempts,
    [BW.recoveries]: recoveries || undefined,
    [BW.hedgeResult]: hedge,
    [BW.mode]: mode,
    [GEN_AI.inputTokens]: d.usage?.input,
    [GEN_AI.outputTokens]: d.usage?.output,
    // A stream's, once it was relayed to the app (an error answer, the sidecar's own or an upstream's, has no first chunk).
    [GEN_AI.timeToFirstChunk]: d.firstByteAt !== undefined && streamed.has(span) && relayed ? (d.firstByteAt - ctx.startedAt) / 1000 : undefined,
  });
  span.end(d.outcome === 'ok' || d.outcome === 'degraded' ? undefined : d.failure === 'none' ? d.outcome : d.failure);
}
