/**
 * An attempt's client span, by the GenAI conventions: started for the
 * request and endpoint the breaker chose, ended with what the attempt came
 * to (the status, the failure class as error.type, the usage, the response
 * model and finish reasons, the time to first token of a stream; the answer
 * text only when the policy opts in). A stream's span ends when the stream
 * does.
 */
import type { Dialect } from '../proxy/dialects/dialect.js';
import type { AttemptRequest } from '../proxy/handler.js';
import type { CallEnd } from '../proxy/holding.js';
import type { TraceScope } from '../proxy/trace-scope.js';
import { answerOf } from './content.js';
import { BW, bounded, finishReasonsIn, GEN_AI, modelIn, operationOf, providerOf, spanName } from './genai.js';
import type { StreamFacts } from './stream-tap.js';

/** Plain answers up to this size are read for their model and finish reasons (a recorded span only). */
const MAX_READ_BYTES = 256 * 1024;

const hosts = new WeakMap<object, { address: string; port: number }>();

/** server.address and server.port of an endpoint (its origin, which holds no credentials). */
function serverOf(endpoint: AttemptRequest['endpoint']): { address: string; port: number } {
  let known = hosts.get(endpoint.config);
  if (!known) {
    const url = new URL(endpoint.config.origin);
    known = { address: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port) || (url.protocol === 'https:' ? 443 : 80) };
    hosts.set(endpoint.config, known);
  }
  return known;
}

/** The span of one attempt, inside its tier's span. */
export function startAttempt(tier: TraceScope, req: AttemptRequest): TraceScope {
  const operation = operationOf(req.appPath);
  const server = serverOf(req.endpoint);
  const span = tier.child(spanName(operation, req.model), 'client', {
    [GEN_AI.operation]: operation,
    [GEN_AI.provider]: providerOf(req.upstream.config),
    [GEN_AI.requestModel]: bounded(req.model),
    [GEN_AI.requestMaxTokens]: req.maxTokens,
    [GEN_AI.requestStream]: req.stream,
    [GEN_AI.serverAddress]: bounded(server.address),
    [GEN_AI.serverPort]: server.port,
    [BW.upstream]: req.upstream.config.name,
    [BW.endpoint]: req.endpoint.index,
    [BW.breakerState]: req.upstream.breakerFor(req.model, req.endpoint.index).stateName,
  });
  // Started while another attempt of the tier is in flight: a hedge (linked to the first).
  span.set({ [BW.hedgeRole]: span.sideBySide ? 'hedge' : undefined });
  return span;
}

/** Ends an attempt's span with how the attempt ended. */
export function endAttempt(span: TraceScope, end: CallEnd, dialect: Dialect, facts: StreamFacts | undefined): void {
  if (end.kind === 'threw') return span.end('_OTHER');
  if (end.kind === 'stream-ended') {
    const { outcome } = end;
    const usage = end.end.kind === 'complete' ? end.end.usage : undefined;
    span.set({
      [GEN_AI.httpStatus]: outcome.status,
      [GEN_AI.timeToFirstChunk]: outcome.timeToFirstDataMs / 1000,
      [GEN_AI.inputTokens]: usage?.input,
      [GEN_AI.outputTokens]: usage?.output,
      [GEN_AI.responseModel]: bounded(facts?.model),
      [GEN_AI.finishReasons]: facts?.finishReasons.length ? facts.finishReasons : undefined,
      [BW.recoveryStrategy]: outcome.strategy,
      [BW.outcome]: end.end.kind,
      [GEN_AI.outputMessages]: span.content && facts?.text ? answerOf(facts.text.text, facts.finishReasons, span.content) : undefined,
    });
    return span.end(end.end.kind === 'failed' ? end.end.failure : undefined);
  }
  const { outcome } = end;
  if (outcome.kind === 'cancelled') {
    span.set({ [BW.outcome]: 'cancelled' });
    return span.end();
  }
  if (outcome.kind === 'local') {
    span.set({ [BW.outcome]: 'local', [BW.code]: outcome.code, [BW.failureClass]: outcome.failure });
    return span.end(outcome.failure);
  }
  const text = span.recording && outcome.body.length <= MAX_READ_BYTES ? outcome.body.toString('utf8') : undefined;
  const finishReasons = text && outcome.failure === undefined ? finishReasonsIn(text) : [];
  span.set({
    [GEN_AI.httpStatus]: outcome.status,
    [BW.failureClass]: outcome.failure,
    [BW.outcome]: outcome.failure === undefined ? 'answer' : 'failed',
    [GEN_AI.inputTokens]: outcome.usage?.input,
    [GEN_AI.outputTokens]: outcome.usage?.output,
    [GEN_AI.responseModel]: text && outcome.failure === undefined ? bounded(modelIn(text)) : undefined,
    [GEN_AI.finishReasons]: finishReasons.length > 0 ? finishReasons : undefined,
    [GEN_AI.outputMessages]: span.content && text && outcome.failure === undefined ? answerOf(answerTextOf(text, dialect), finishReasons, span.content) : undefined,
  });
  span.end(outcome.failure);
}

/** The text of a plain answer, as its dialect reads it (only with content opted in). */
function answerTextOf(text: string, dialect: Dialect): string | undefined {
  try {
    const json = JSON.parse(text) as unknown;
    return typeof json === 'object' && json !== null ? dialect.answerText(json as Record<string, any>) : undefined;
  } catch {
    return undefined;
  }
}
