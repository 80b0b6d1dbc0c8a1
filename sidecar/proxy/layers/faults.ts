/**
 * Fault injection (policy `faults`), per attempt: a delay before it, or an
 * answer with the abort status in the API's own error shape instead of it.
 * Retries, fallbacks and breakers see injected faults like real ones.
 */
import type { Metrics } from '../../metrics.js';
import { type Clock, sleep } from '../../resilience/index.js';
import { classifyStatus } from '../dialects/classify.js';
import { enabledWhen, type AttemptRequest, type Handler, type Layer } from '../handler.js';

export interface FaultDeps {
  clock: Clock;
  metrics: Metrics;
  random?: () => number;
}

export function faults({ clock, metrics, random = Math.random }: FaultDeps): Layer<AttemptRequest> {
  return enabledWhen<AttemptRequest>((config) => config.faults.length > 0, (inner) => {
    const injecting: Handler<AttemptRequest> = async (req, ctx) => {
      const { name, faults: injected } = req.upstream.config;
      for (const fault of injected) {
        if (random() * 100 >= fault.percent) continue;
        if (fault.delayMs !== undefined) {
          metrics.faults.inc({ upstream: name, kind: 'delay' });
          if (!(await sleep(clock, Math.min(fault.delayMs, Math.max(0, ctx.deadline - clock.now())), ctx.signal))) return { kind: 'cancelled' };
        }
        if (fault.abortStatus !== undefined) {
          metrics.faults.inc({ upstream: name, kind: 'abort' });
          const body = ctx.dialect.upstreamErrorBody(fault.abortStatus, 'fault injected by the Breakwater policy');
          return {
            kind: 'answer',
            upstream: name,
            model: req.model,
            status: fault.abortStatus,
            headers: { 'content-type': 'application/json', 'x-breakwater-fault': 'abort' },
            body: Buffer.from(body),
            failure: classifyStatus(fault.abortStatus, body, ctx.dialect.recognisers),
          };
        }
      }
      return inner(req, ctx);
    };
    return (req, ctx) => (req.upstream.config.faults.length === 0 ? inner(req, ctx) : injecting(req, ctx));
  });
}
