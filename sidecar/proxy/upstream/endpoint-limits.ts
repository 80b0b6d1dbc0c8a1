/**
 * The adaptive limits of an upstream's endpoints (bulkhead mode adaptive):
 * each endpoint learns its own from its answers (../layers/adaptive-limit.ts),
 * starting from its share of the upstream's bounds, and the bulkhead's limit
 * is their sum within the upstream's bounds (one endpoint: its limit is the
 * upstream's). And whether the requests waiting in its bulkhead's queue are
 * a sign of overload, for degraded mode's `queueDepth` (queuePressure).
 */
import { AdaptiveLimit, type AdaptiveLimitSettings, type Bulkhead, type Clock, type LimitChange } from '../../resilience/index.js';

/**
 * Gives each endpoint an adaptive limit and keeps `bulkhead`'s limit at their sum; `onChange` hears why each moved.
 * `carried` finds the limit the same endpoint had under the config this one replaces: a reload that changes, say, a
 * timeout does not make the endpoints learn their provider again from `initial`.
 */
export function adaptLimits<E extends { limit?: AdaptiveLimit }>(endpoints: readonly E[], bulkhead: Bulkhead, bounds: AdaptiveLimitSettings, clock: Clock, onChange: (why: LimitChange) => void, carried: (e: E) => AdaptiveLimit | undefined = () => undefined): void {
  const n = endpoints.length;
  const share = { min: Math.max(1, Math.floor(bounds.min / n)), max: bounds.max, initial: Math.max(1, Math.ceil(bounds.initial / n)) };
  const sum = () => Math.min(bounds.max, Math.max(bounds.min, endpoints.reduce((total, e) => total + e.limit!.limit, 0)));
  for (const e of endpoints) {
    const onLimitChange = (_limit: number, why: LimitChange) => {
      bulkhead.setLimit(sum());
      onChange(why);
    };
    e.limit = new AdaptiveLimit(share, clock, onLimitChange, carried(e));
  }
  bulkhead.setLimit(sum());
}

/**
 * Requests waiting for the bulkhead that degraded mode's `queueDepth` counts: all of them behind a fixed limit, or an
 * adaptive one that cannot open further (at its max) or whose every endpoint the provider holds back (each refused:
 * probing). Behind an adaptive limit still opening (an endpoint in slow start), a queue is a burst on its way in, not
 * overload: it counts for nothing. (One small endpoint that refused does not make the others' opening an overload.)
 */
export function queuePressure(u: { bulkhead: Bulkhead; limitBounds: { max: number }; endpoints: readonly { limit?: AdaptiveLimit }[] }): number {
  const opening = u.endpoints.some((e) => e.limit?.phase === 'slow-start') && u.bulkhead.limit < u.limitBounds.max;
  return opening ? 0 : u.bulkhead.waiting;
}
