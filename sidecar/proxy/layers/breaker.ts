/**
 * Breaker admission and endpoint choice: the attempt goes to the first
 * endpoint, in the balancer's order, that is healthy (with active health
 * checks) and whose breaker (for the request's model when scoped so) admits
 * it; when none does, 503 `circuit_open` comes back
 * without an attempt. The permit is settled here, once: the outcome recorded
 * when the answer is in or the stream ends, or given back without one when
 * the app left or a layer threw. Breakers see injected faults (the faults
 * layer is inside this one).
 */
import type { FailureClass } from '../../../api/index.js';
import type { Clock } from '../../resilience/index.js';
import { localError, type Layer } from '../handler.js';
import { holding, type CallEnd } from '../holding.js';

/** The failure an attempt ended with, or 'none'; undefined when there is no outcome to report. */
function reported(end: CallEnd): FailureClass | 'none' | undefined {
  switch (end.kind) {
    case 'threw':
      return undefined;
    case 'stream-ended':
      return end.end.kind === 'cancelled' ? undefined : end.end.kind === 'failed' ? end.end.failure : 'none';
    case 'returned':
      if (end.outcome.kind === 'cancelled') return undefined;
      return (end.outcome.failure as FailureClass | undefined) ?? 'none';
  }
}

export function breaker(clock: Clock): Layer {
  return (inner) => (req, ctx) => {
    const { upstream } = req;
    const admission = upstream.choose(req.model);
    if (!admission.ok) {
      const scope = req.model && upstream.config.breaker.scope === 'model' ? ` (model ${req.model})` : '';
      // An endpoint its health check finds unhealthy is ejected as its breaker would eject it.
      const why = admission.unhealthy ? `no endpoint of upstream ${upstream.name} is healthy` : `circuit breaker for upstream ${upstream.name}${scope} is open`;
      return Promise.resolve(localError(req, 503, 'circuit_open', why, 'unavailable', admission.retryAfterMs));
    }
    const { breaker: circuit, permit, endpoint } = admission;
    const failOn = upstream.config.breaker.failOn;
    const started = clock.now();
    return holding(
      () => inner({ ...req, endpoint }, ctx),
      (end) => {
        const failure = reported(end);
        if (failure === undefined) return circuit.release(permit);
        // A stream is judged by its time to first data, not by how long the answer takes to read.
        const durationMs = end.kind === 'stream-ended' ? end.outcome.timeToFirstDataMs : clock.now() - started;
        circuit.record(permit, { failure: failure !== 'none' && failOn.has(failure), durationMs });
      },
    );
  };
}
