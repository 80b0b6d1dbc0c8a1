/**
 * The fallback chain: the addressed upstream first, then each tier its
 * `when` admits, until one answers: another upstream (its own request, model
 * and credentials, through the layers below), the cache, or the policy's
 * static message. In emergency mode only the tiers the policy lists answer.
 * The total timeout spans the chain. A stream whose first token is late
 * (timeouts.fallbackHedge) also goes to the next upstream tier that takes a
 * timeout, and the first to give content wins (first-token-race.ts). Everything below this layer runs once
 * per upstream tier.
 */
import type { ChainTier, FallbackTierConfig } from '../../config/index.js';
import type { Clock } from '../../resilience/index.js';
import type { ResponseCache } from '../answers/response-cache.js';
import { answerFromCache, staticAnswer } from '../answers/composed-answers.js';
import { failureOf, localError, NOT_TAKEN, type ChainFailure, type Handler, type Layer, type Outcome, type ProxyRequest, type RequestContext } from '../handler.js';
import { firstTokenRace } from '../first-token-race.js';
import type { Metrics } from '../../metrics.js';
import { requestFor } from '../upstream/tier-request.js';
import type { UpstreamState } from '../upstream/upstream-state.js';

/** Classes that, once retries are spent, make an upstream "unavailable" for `when`. */
const UNAVAILABLE = new Set(['unavailable', 'rate-limited', 'overloaded', 'server-error', 'timeout', 'connect-failure', 'reset']);

/**
 * Whether a tier takes a failure. A content-filter refusal goes only to a tier whose `when` names it:
 * routing around a provider's safety system is the policy author's decision, never a default.
 */
function admits(tier: FallbackTierConfig, failure: ChainFailure): boolean {
  if (!tier.when) return failure !== 'content-filter';
  return tier.when.has(failure) || (tier.when.has('unavailable') && UNAVAILABLE.has(failure));
}

export interface FallbackDeps {
  clock: Clock;
  metrics: Metrics;
  upstream(name: string): UpstreamState | undefined;
  cache(): ResponseCache;
}

export function fallback(deps: FallbackDeps): Layer {
  return (inner) => {
    const walk: Handler = async (primaryRequest, ctx) => {
      const primary = primaryRequest.upstream;
      const emergency = primaryRequest.mode === 'emergency';
      const tiers = emergency ? primary.config.emergencyChain : primary.config.chain;
      let failure: ChainFailure | undefined = emergency ? 'unavailable' : undefined;
      let last: Outcome | undefined;
      for (let i = 0; i < tiers.length; i++) {
        const tier = tiers[i]!;
        if (tier.kind !== 'primary' && (failure === undefined || !admits(tier, failure))) continue;
        // A request that must not be sent twice goes to another upstream only if the last did not take it.
        if (tier.kind === 'upstream' && !ctx.dialect.replaysSafely && !NOT_TAKEN.has(failure!)) continue;
        if (tier.kind !== 'primary') ctx.trace?.event('breakwater.fallback', { 'breakwater.failure_class': failure, 'breakwater.fallback.tier': tier.kind === 'upstream' ? tier.upstream : tier.kind });
        if (tier.kind === 'cache') {
          const hit = await answerFromCache(deps.cache(), primaryRequest.cacheKey, primaryRequest, ctx.dialect);
          if (hit) return hit;
          continue;
        }
        if (tier.kind === 'static') {
          const answer = staticAnswer(tier.message, primaryRequest, ctx.dialect);
          if (answer) return answer;
          continue; // a path whose answers are not text (embeddings, audio): no message stands in for one
        }
        const upstream = tier.kind === 'primary' ? primary : deps.upstream(tier.upstream);
        // A body streamed to the primary (over maxBodyBytes) cannot be sent again.
        if (!upstream || (tier.kind !== 'primary' && primaryRequest.bodyStream) || deps.clock.now() >= ctx.deadline) continue;
        const request = tier.kind === 'primary' ? primaryRequest : requestFor(primaryRequest, ctx.dialect, upstream, tier.model);
        const alternate = tier.kind === 'primary' ? raceable(primaryRequest, ctx, tiers, i) : undefined;
        if (alternate) {
          const race = await firstTokenRace(inner, request, () => requestFor(primaryRequest, ctx.dialect, alternate.upstream, alternate.tier.model), ctx, primary.config.timeouts.fallbackHedgeMs, deps.clock);
          last = race.outcome;
          if (race.raced) {
            deps.metrics.hedges.inc({ upstream: primary.config.name, result: race.winner === 'alternate' ? 'won' : 'lost' });
            ctx.report.hedged(race.winner === 'alternate' ? 'won' : 'lost');
            ctx.trace?.event('breakwater.fallback_race', { 'breakwater.hedge.result': race.winner === 'alternate' ? 'won' : 'lost', 'breakwater.fallback.tier': alternate.tier.upstream });
            i = alternate.index; // the alternate tier has been tried
          }
        } else last = await inner(request, ctx);
        failure = failureOf(last);
        // A success stands, and so does the app's own mistake: no other tier would take it better.
        if (failure === undefined || failure === 'client-error') break;
      }
      if (last) return last;
      const message = emergency ? 'the sidecar is in emergency mode and has no cached answer for this request' : 'no tier of the chain could be tried';
      return localError(primaryRequest, 503, 'overloaded', message, 'unavailable', 5000);
    };

    /** For a stream's primary tier: the upstream tier it races once its first token is late (the next one that takes a timeout), if any. */
    const raceable = (req: ProxyRequest, ctx: RequestContext, tiers: readonly ChainTier[], from: number) => {
      if (!req.stream || req.resume || req.bodyStream || !ctx.dialect.replaysSafely || req.mode === 'emergency' || req.upstream.config.timeouts.fallbackHedgeMs === 0) return undefined;
      for (let index = from + 1; index < tiers.length; index++) {
        const tier = tiers[index]!;
        if (tier.kind !== 'upstream' || !admits(tier, 'timeout')) continue;
        const upstream = deps.upstream(tier.upstream);
        return upstream ? { index, tier, upstream } : undefined;
      }
      return undefined;
    };

    // An upstream with no fallback tier, outside emergency mode, is its chain: the request goes straight through.
    return (req, ctx) => (req.upstream.config.chain.length === 1 && req.mode !== 'emergency' && deps.clock.now() < ctx.deadline ? inner(req, ctx) : walk(req, ctx));
  };
}
