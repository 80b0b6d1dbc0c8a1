/**
 * Bulkhead admission: a slot of the upstream's bulkhead for the request's
 * priority class, waited for in its queue when none is free (until the queue
 * timeout or the app leaves). Refused: 503 `overloaded`, which `fallback.when:
 * [unavailable]` takes. The slot is held until the answer is in, or for a
 * stream until it ends, and given back here, once.
 */
import type { Metrics } from '../../metrics.js';
import { BulkheadRejection } from '../../resilience/index.js';
import { localError, type Handler, type Layer } from '../handler.js';
import { holding } from '../holding.js';

export function bulkhead(metrics: Metrics): Layer {
  return (inner) => {
    /** With a slot taken: holds it until the call is over. */
    const held: Handler = (req, ctx) =>
      holding(
        () => inner(req, ctx),
        () => req.upstream.bulkhead.release(req.priority),
      );
    const queued: Handler = async (req, ctx) => {
      const { bulkhead: slots, config } = req.upstream;
      try {
        await slots.acquire(req.priority, ctx.signal);
      } catch (err) {
        if (!(err instanceof BulkheadRejection)) throw err;
        if (err.reason === 'aborted') return { kind: 'cancelled' };
        metrics.bulkheadRejected.inc({ upstream: config.name, reason: err.reason });
        return localError(req, 503, 'overloaded', `upstream ${config.name} is at its concurrency limit (${err.reason})`, 'unavailable', 1000);
      }
      return held(req, ctx);
    };
    return (req, ctx) => (req.upstream.bulkhead.tryAcquire(req.priority) ? held(req, ctx) : queued(req, ctx));
  };
}
