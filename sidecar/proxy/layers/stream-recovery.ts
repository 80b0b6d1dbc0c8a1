/**
 * Mid-stream recovery: a stream from the chain below is relayed through a
 * RecoveringStream, which, when the stream breaks after text reached the app,
 * asks the chain for the same request again, carrying the text delivered so
 * a tier that can continue it does (layers/continuation.ts); the others
 * answer anew, and their text is verified against what was delivered
 * (recovering-stream.ts). Bounded by the upstream's
 * streamRecovery.maxRecoveries and the request's deadline.
 */
import type { Metrics } from '../../metrics.js';
import type { Clock } from '../../resilience/index.js';
import type { Layer } from '../handler.js';
import { RecoveringStream } from '../recovering-stream.js';

export function streamRecovery(clock: Clock, metrics: Metrics): Layer {
  return (inner) => async (req, ctx) => {
    const outcome = await inner(req, ctx);
    const { maxRecoveries } = req.upstream.config.streamRecovery;
    if (outcome.kind !== 'stream' || maxRecoveries === 0) return outcome;
    const body = new RecoveringStream(outcome.body, {
      dialect: ctx.dialect,
      framing: outcome.framing,
      maxRecoveries,
      async again(delivered) {
        if (clock.now() >= ctx.deadline || ctx.signal.aborted) return undefined;
        const next = await inner({ ...req, continuation: delivered }, ctx);
        return next.kind === 'stream' ? next : undefined;
      },
      onRecovery: (result, strategy) => {
        metrics.streamRecoveries.inc({ upstream: req.upstream.config.name, strategy, result });
        if (result === 'recovered') ctx.recoveries = (ctx.recoveries ?? 0) + 1;
      },
    });
    return { ...outcome, body };
  };
}
