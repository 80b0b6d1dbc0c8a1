/**
 * Input guards (the upstream's `guards`): a request that trips one is
 * answered 400 guardrail_blocked at once, as a client error (never retried,
 * never a breaker failure, never sent to a fallback tier, never answered from
 * the cache or a static tier), and never reaches the upstream. What is said
 * and counted about it is the guard's name only. The layer stands twice: the
 * addressed upstream's guards before anything can answer, and each fallback
 * tier's own before that tier is sent the request.
 */
import type { Metrics } from '../../metrics.js';
import { enabledWhen, localError, type Layer } from '../handler.js';

export function inputGuard(metrics: Metrics, scope: 'addressed' | 'fallback tiers'): Layer {
  return enabledWhen((config) => config.guards.active, (inner) => (req, ctx) => {
    // The addressed upstream's were read by the outer layer.
    if (scope === 'fallback tiers' && req.upstream.config.name === ctx.primary) return inner(req, ctx);
    const guards = req.upstream.config.guards;
    // A request without a body (GET /v1/models) carries no input to guard.
    if (!guards.active || (!req.body && !req.bodyStream)) return inner(req, ctx);
    const tripped = guards.check(req.bodyStream ? null : req.body);
    if (tripped === undefined) return inner(req, ctx);
    metrics.guardBlocks.inc({ upstream: req.upstream.config.name, guard: tripped });
    return Promise.resolve(localError(req, 400, 'guardrail_blocked', `the request was blocked by input guard "${tripped}"`, 'client-error'));
  });
}
