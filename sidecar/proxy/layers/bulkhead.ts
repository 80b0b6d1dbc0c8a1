/**
 * Bulkhead admission: a slot of the upstream's bulkhead for the request's
 * priority class, waited for in its queue when none is free (until the queue
 * timeout or the app leaves). Refused: 503 `overloaded`, which `fallback.when:
 * [unavailable]` takes. The slot is held until the answer is in, or for a
 * stream until it ends, and given back here, once.
 */
import type { Metrics } from '../../metrics.js';
import { BulkheadRejection } from '../../resilience/index.js';
import { localError, type Layer } from '../handler.js';
import { holding } from '../holding.js';

export function bulkhead(metrics: Metrics): Layer {
  return (inner) => async (req, ctx) => {
    const { bulkhead: slots, config } = req.upstream;
    if (!slots.tryAcquire(req.priority)) {
      try {
        await slots.acquire(req.priority, ctx.signal);
      } catch (err) {
        if (!(err instanceof BulkheadRejection)) throw err;
        if (err.reason === 'aborted') return { kind: 'cancelled' };
        metrics.bulkheadRejected.inc({ upstream: config.name, reason: err.reason });
        return localError(req, 503, 'overloaded', `upstream ${config.name} is at its concurrency limit (${err.reason})`, 'unavailable', 1000);
      }
    }
    return holding(
      () => inner(req, ctx),
      () => slots.release(req.priority),
    );
  };
}
