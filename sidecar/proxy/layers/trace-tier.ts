/**
 * The tier's span (tracing, when the policy turns it on): each upstream tier
 * the chain tries gets a span inside the request's, and the layers below it
 * put their decisions on that span (retries, waits, the hedge); it ends with
 * the tier's outcome, a stream's when the stream ends. A request without a
 * trace (tracing still starting, or off since) goes straight through.
 */
import { endTier, startTier } from '../../tracing/tier-span.js';
import { enabledWhen, type Layer } from '../handler.js';
import { holding } from '../holding.js';

export const traceTier: Layer = enabledWhen(
  (config) => config.traced,
  (inner) => (req, ctx) => {
    if (!ctx.trace) return inner(req, ctx);
    const span = startTier(ctx.trace, req, ctx);
    return holding(
      () => inner(req, { ...ctx, trace: span }),
      (end) => endTier(span, end),
    );
  },
);
