/**
 * The answer cache around the fallback chain: computes the request's key once
 * (only for chains that can use it) and hands it in with the request
 * (ProxyRequest.cacheKey, for fallback's cache tier), answers from the cache before anything
 * else when `cache.serveFresh` is set, and keeps every good plain JSON answer
 * to a text request (a POST to a completion endpoint) so that a cache tier has
 * something to serve later.
 */
import { ResponseCache } from '../answers/response-cache.js';
import { answerFromCache } from '../answers/composed-answers.js';
import type { Handler, Layer } from '../handler.js';

export function answerCache(cache: () => ResponseCache): Layer {
  return (inner) => {
    const cached: Handler = async (req, ctx) => {
      const store = cache();
      const key = ResponseCache.key(req.upstream.config.name, req.appPath, req.body);
      if (store.config.serveFresh) {
        const hit = await answerFromCache(store, key, req, ctx.dialect);
        if (hit) return hit;
      }
      const outcome = await inner({ ...req, cacheKey: key }, ctx);
      if (outcome.kind === 'answer' && !outcome.composed && outcome.failure === undefined && !req.stream && String(outcome.headers['content-type'] ?? '').includes('json')) {
        store.set(key, { status: outcome.status, contentType: 'application/json', body: outcome.body });
      }
      return outcome;
    };
    // A chain that cannot use the cache pays nothing for it; nor does a request whose answer is not text
    // (a pass-through path or method: embeddings, a GET or DELETE of a stored response), which it never serves.
    return (req, ctx) => ((cache().config.serveFresh || req.upstream.config.hasCacheTier) && ctx.dialect.composeAnswer ? cached(req, ctx) : inner(req, ctx));
  };
}
