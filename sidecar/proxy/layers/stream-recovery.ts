/**
 * Mid-stream recovery: a stream from the chain below is relayed through a
 * RecoveringStream, which, when the stream breaks after text reached the app,
 * asks the chain for the same request again and continues the answer from
 * it, regenerated and verified (recovering-stream.ts). Bounded by the
 * upstream's streamRecovery.maxRecoveries and the request's deadline.
 */
import type { Metrics } from '../../metrics.js';
import type { Clock } from '../../resilience/index.js';
import type { Layer } from '../handler.js';
import { RecoveringStream } from '../recovering-stream.js';

export function streamRecovery(clock: Clock, metrics: Metrics): Layer {
  return (inner) => async (req, ctx) => {
    const outcome = await inner(req, ctx);
    const maxRecoveries = req.upstream.config.maxStreamRecoveries;
    if (outcome.kind !== 'stream' || maxRecoveries === 0) return outcome;
    const body = new RecoveringStream(outcome.body, {
      dialect: ctx.dialect,
      framing: outcome.framing,
      maxRecoveries,
      async again() {
        if (clock.now() >= ctx.deadline || ctx.signal.aborted) return undefined;
        const next = await inner(req, ctx);
        return next.kind === 'stream' ? next.body : undefined;
      },
      onRecovery: (result) => {
        metrics.streamRecoveries.inc({ upstream: req.upstream.config.name, strategy: 'regenerate', result });
        if (result === 'recovered') ctx.recoveries = (ctx.recoveries ?? 0) + 1;
      },
    });
    return { ...outcome, body };
  };
}
