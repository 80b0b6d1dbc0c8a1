/**
 * The adaptive limit's eyes, per attempt (bulkhead mode adaptive): what each
 * attempt's outcome says of the provider's load (../upstream/provider-load.ts)
 * moves its endpoint's limit, which the bulkhead lets requests in by. It
 * reads every attempt, retries and hedges included, not only the request's
 * last: a 429 that a retry later got past still says the provider was full.
 * Inside endpointLoad, so the endpoint's count of attempts in flight, this
 * one among them, is what the provider held when it answered; the bulkhead
 * says at what limit it would have sent only that many (limitFor).
 */
import type { Clock } from '../../resilience/index.js';
import { enabledWhen, type AttemptRequest } from '../handler.js';
import { providerLoad } from '../upstream/provider-load.js';

/** How long a quota close to spent holds the limit's growth (each answer that says so holds it again). */
const QUOTA_HOLD_MS = 1000;

export function adaptiveLimit(clock: Clock) {
  return enabledWhen<AttemptRequest>(
    (config) => config.bulkhead.adaptive !== undefined,
    (inner) => (req, ctx) => {
      const { endpoint } = req;
      const limit = endpoint.limit;
      if (!limit) return inner(req, ctx);
      const sentAt = clock.now();
      return inner(req, ctx).then((outcome) => {
        const load = providerLoad(outcome, clock.wallTime());
        if (load?.kind === 'refused') {
          // The limit at which the endpoint would have sent only what the provider held: the bulkhead's own measure
          // (slots reserved for idle classes, attempts waiting out a Retry-After and this one are not at the provider),
          // or this endpoint's share of the slots in use when there are several.
          const { bulkhead, endpoints } = req.upstream;
          const atProvider = endpoint.outstanding - 1;
          const share = (bulkhead.active * limit.limit) / Math.max(1, bulkhead.limit);
          const held = endpoints.length === 1 ? bulkhead.limitFor(req.priority, atProvider) : limit.limit * Math.min(1, Math.max(1, atProvider) / Math.max(1, share));
          limit.refused(sentAt, atProvider, held, load.retryAfterMs, endpoints.length === 1 ? bulkhead.active : share);
        }
        else if (load) {
          if (load.quotaLow) limit.hold(QUOTA_HOLD_MS);
          limit.served(sentAt, endpoint.outstanding, load.ttftMs);
        }
        return outcome;
      });
    },
  );
}
