/**
 * Answers the sidecar composes instead of calling an upstream: the last good
 * answer to the same request (cache tier) and the policy's static message
 * (static tier), in the app's API's success shape, streamed if it asked.
 */
import type { Dialect } from '../dialects/dialect.js';
import type { AnswerOutcome, ProxyRequest } from '../handler.js';
import type { ResponseCache } from './response-cache.js';

const NO_USAGE = { input: 0, output: 0 };

function composed(req: ProxyRequest, dialect: Dialect, text: string, plainBody: Buffer | undefined, tier: 'cache' | 'static'): AnswerOutcome | undefined {
  const model = req.model ?? 'breakwater';
  const headers: Record<string, string> = tier === 'cache' ? { 'x-breakwater-cache': 'hit' } : { 'x-breakwater-degraded': 'true' };
  if (!dialect.composeAnswer || !dialect.composeStream) return undefined;
  let body: Buffer;
  if (req.stream) {
    const events = dialect.composeStream(model, [text], NO_USAGE);
    body = Buffer.from([...events.start, ...events.content, ...events.end].join(''));
    Object.assign(headers, { 'content-type': dialect.streamContentType, 'cache-control': 'no-cache' });
  } else {
    body = plainBody ?? Buffer.from(dialect.composeAnswer(model, text, NO_USAGE));
    headers['content-type'] = 'application/json';
  }
  return { kind: 'answer', upstream: req.upstream.config.name, status: 200, headers, body, failure: undefined, composed: tier };
}

/** The cached answer to this request, or undefined when there is none the app's API can read. */
export async function answerFromCache(cache: ResponseCache, key: string | undefined, req: ProxyRequest, dialect: Dialect): Promise<AnswerOutcome | undefined> {
  const hit = await cache.get(key);
  if (!hit) return undefined;
  let text: unknown;
  try {
    text = dialect.answerText(JSON.parse(hit.body.toString('utf8')) as Record<string, any>);
  } catch {
    return undefined;
  }
  return typeof text === 'string' ? composed(req, dialect, text, hit.body, 'cache') : undefined;
}

/** The policy's static message as an answer, or undefined for a path whose answers are not text. */
export function staticAnswer(message: string, req: ProxyRequest, dialect: Dialect): AnswerOutcome | undefined {
  return composed(req, dialect, message, undefined, 'static');
}
