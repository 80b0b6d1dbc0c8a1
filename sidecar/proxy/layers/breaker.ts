/**
 * Breaker admission and endpoint choice: the attempt goes to the first
 * endpoint, in the balancer's order, that is healthy (with active health
 * checks) and whose breaker (for the request's model when scoped so) admits
 * it, handed to the layers inside as an AttemptRequest with that endpoint;
 * when none does, the layer's refusal (a BreakerRefusal, 503 `circuit_open`
 * to the app) comes back without an attempt. The permit is settled here,
 * once: the outcome recorded
 * when the answer is in or the stream ends, or given back without one when
 * the app left or a layer threw. Breakers see injected faults (the faults
 * layer is inside this one).
 */
import type { FailureClass } from '../../../api/index.js';
import type { Clock } from '../../resilience/index.js';
import { localError, type AttemptRequest, type BreakerRefusal, type Layer, type ProxyRequest } from '../handler.js';
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

/** The breaker layer's refusal of `req`'s attempt, with why and how long until a breaker might admit one. */
export function breakerRefusal(req: ProxyRequest, message: string, retryAfterMs: number): BreakerRefusal {
  return { ...localError(req, 503, 'circuit_open', message, 'unavailable', retryAfterMs), code: 'circuit_open', refusedBy: 'breaker' };
}

export function breaker(clock: Clock): Layer<ProxyRequest, AttemptRequest> {
  return (inner) => (req, ctx) => {
    const { upstream } = req;
    const admission = upstream.choose(req.model);
    if (!admission.ok) {
      const scope = req.model && upstream.config.breaker.scope === 'model' ? ` (model ${req.model})` : '';
      // An endpoint its health check finds unhealthy is ejected as its breaker would eject it.
      const why = admission.unhealthy ? `no endpoint of upstream ${upstream.name} is healthy` : `circuit breaker for upstream ${upstream.name}${scope} is open`;
      return Promise.resolve(breakerRefusal(req, why, admission.retryAfterMs));
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
