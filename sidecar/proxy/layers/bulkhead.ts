/**
 * Bulkhead admission: a slot of the upstream's bulkhead for the request's
 * priority class, waited for in its queue when none is free (until the queue
 * timeout or the app leaves). With `bulkhead.fairBy`, waiters of a class are
 * let in fairly between callers (the header's value) by tokens: the input at
 * ~4 bytes a token plus max_tokens (FAIR_OUTPUT_TOKENS without one). The
 * limit it admits by is fixed or adaptive (the adaptiveLimit layer moves it
 * from each attempt's answer). Refused: 503 `overloaded`, which
 * `fallback.when: [unavailable]` takes. The slot is held until the answer is
 * in, or for a stream until it ends, and given back here, once.
 */
import { firstHeader } from '../../../lib/index.js';
import type { Metrics } from '../../metrics.js';
import { BulkheadRejection, type Claim } from '../../resilience/index.js';
import { tokensOfText } from '../expected-usage.js';
import { localError, type Handler, type Layer, type ProxyRequest } from '../handler.js';
import { holding } from '../holding.js';

/** The output a request without max_tokens is counted for, for fairness only (no budget reserves it). */
export const FAIR_OUTPUT_TOKENS = 512;
/** A caller's name is cut to this many characters: a long header cannot make a large key. */
const MAX_CALLER_CHARS = 128;

/** Who the request is for and what it costs, with fair admission on (undefined when off). */
export function claimOf(req: ProxyRequest): Claim | undefined {
  const header = req.upstream.config.bulkhead.fairBy;
  if (header === undefined) return undefined;
  const caller = (firstHeader(req.appHeaders, header) ?? '').slice(0, MAX_CALLER_CHARS);
  return { caller, cost: tokensOfText(req.body?.length ?? 0) + (req.maxTokens ?? FAIR_OUTPUT_TOKENS) };
}

export function bulkhead(metrics: Metrics): Layer {
  return (inner) => {
    /** With a slot taken: holds it until the call is over. */
    const held: Handler = (req, ctx) =>
      holding(
        () => inner(req, ctx),
        () => req.upstream.bulkhead.release(req.priority),
      );
    const queued = async (req: ProxyRequest, ctx: Parameters<Handler>[1], claim: Claim | undefined) => {
      const { bulkhead: slots, config } = req.upstream;
      // Traced: the wait in the queue is a span of its own, inside the tier's.
      const wait = ctx.trace?.child('bulkhead wait', 'internal', { 'breakwater.upstream': config.name, 'breakwater.priority': req.priority });
      try {
        await slots.acquire(req.priority, ctx.signal, claim);
        wait?.end();
      } catch (err) {
        wait?.end(err instanceof BulkheadRejection ? err.reason : '_OTHER');
        if (!(err instanceof BulkheadRejection)) throw err;
        if (err.reason === 'aborted') return { kind: 'cancelled' } as const;
        metrics.bulkheadRejected.inc({ upstream: config.name, reason: err.reason });
        return localError(req, 503, 'overloaded', `upstream ${config.name} is at its concurrency limit (${err.reason})`, 'unavailable', 1000);
      }
      return held(req, ctx);
    };
    return (req, ctx) => {
      const claim = claimOf(req);
      return req.upstream.bulkhead.tryAcquire(req.priority, claim) ? held(req, ctx) : queued(req, ctx, claim);
    };
  };
}
