/**
 * The OpenTelemetry GenAI semantic conventions as the sidecar writes them:
 * the attribute names (gen_ai.*, and the breakwater.* ones that say what the
 * resilience layers decided), the operation and provider of a request, and
 * what an answer says of its model and finish. Every string that reaches an
 * attribute passes `bounded()`: model names and paths come from apps.
 * Headers, query strings and bodies are never read here (content is
 * content.ts's, and opt-in).
 */
import type { UpstreamConfig } from '../config/index.js';

/** The attribute names (@opentelemetry/semantic-conventions 1.45's incubating gen_ai.* and the stable server, error, http and url ones). */
export const GEN_AI = {
  operation: 'gen_ai.operation.name',
  provider: 'gen_ai.provider.name',
  requestModel: 'gen_ai.request.model',
  requestMaxTokens: 'gen_ai.request.max_tokens',
  requestStream: 'gen_ai.request.stream',
  timeToFirstChunk: 'gen_ai.response.time_to_first_chunk',
  responseModel: 'gen_ai.response.model',
  finishReasons: 'gen_ai.response.finish_reasons',
  inputTokens: 'gen_ai.usage.input_tokens',
  outputTokens: 'gen_ai.usage.output_tokens',
  inputMessages: 'gen_ai.input.messages',
  outputMessages: 'gen_ai.output.messages',
  serverAddress: 'server.address',
  serverPort: 'server.port',
  errorType: 'error.type',
  httpStatus: 'http.response.status_code',
  httpMethod: 'http.request.method',
  urlPath: 'url.path',
} as const;

/** What the resilience layers decided, in breakwater.* attributes and events. */
export const BW = {
  upstream: 'breakwater.upstream',
  tierRole: 'breakwater.tier.role',
  failureClass: 'breakwater.failure_class',
  outcome: 'breakwater.outcome',
  attempts: 'breakwater.attempts',
  attempt: 'breakwater.attempt.number',
  endpoint: 'breakwater.endpoint',
  breakerState: 'breakwater.breaker.state',
  retryReason: 'breakwater.retry.reason',
  retryWaitMs: 'breakwater.retry.wait_ms',
  retryAfterMs: 'breakwater.retry.retry_after_ms',
  retryStopped: 'breakwater.retry.stopped',
  fallbackTier: 'breakwater.fallback.tier',
  hedgeRole: 'breakwater.hedge.role',
  hedgeResult: 'breakwater.hedge.result',
  recoveryStrategy: 'breakwater.recovery.strategy',
  recoveryResult: 'breakwater.recovery.result',
  recoveries: 'breakwater.recoveries',
  mode: 'breakwater.degradation.mode',
  budget: 'breakwater.budget',
  waitMs: 'breakwater.wait_ms',
  code: 'breakwater.error.code',
} as const;

const MAX_CHARS = 256;

/** `text` cut to 256 characters (no split surrogate pair), or undefined. */
export function bounded(text: string | undefined, max = MAX_CHARS): string | undefined {
  if (text === undefined || text.length <= max) return text;
  const cut = text.charCodeAt(max - 1) >= 0xd800 && text.charCodeAt(max - 1) <= 0xdbff ? max - 1 : max;
  return text.slice(0, cut);
}

/** url.path of a request: its path without the query or any matrix parameter (`;key=…`), either of which may carry a key. */
export function pathOf(appPath: string): string | undefined {
  return bounded(appPath.split('?', 1)[0]!.replace(/;[^/]*/g, ''));
}

/** gen_ai.operation.name of a request, from its path. */
export function operationOf(appPath: string): string {
  const path = appPath.split('?', 1)[0]!;
  if (/\/embeddings?$|\/api\/embed$/.test(path)) return 'embeddings';
  if (/(^|\/)completions$|\/api\/generate$/.test(path) && !/chat\/completions$/.test(path)) return 'text_completion';
  return 'chat';
}

/** gen_ai.provider.name of an upstream: its API family (Azure OpenAI when it pins an api-version). */
export function providerOf(config: UpstreamConfig): string {
  if (config.api === 'openai') return config.apiVersion === undefined ? 'openai' : 'azure.ai.openai';
  return config.api;
}

/** The span name the conventions give an operation: `{operation} {model}`. */
export const spanName = (operation: string, model: string | undefined) => (model ? `${operation} ${bounded(model, 64)}` : operation);

const MODEL = /"model"\s*:\s*"((?:[^"\\]|\\.){1,256})"/;
const FINISH = /"(?:finish_reason|stop_reason|done_reason)"\s*:\s*"([A-Za-z_\-]{1,32})"/g;

/** The model an answer (or a stream event) names, bounded; undefined when it names none. */
export function modelIn(text: string): string | undefined {
  return MODEL.exec(text)?.[1];
}

/** The finish reasons an answer (or a stream event) gives, at most 8. */
export function finishReasonsIn(text: string, into: string[] = []): string[] {
  for (const m of text.matchAll(FINISH)) if (into.length < 8 && !into.includes(m[1]!)) into.push(m[1]!);
  return into;
}
