/**
 * Client-side rate limit (policy `rateLimit`): a request takes one request
 * and its estimated tokens from the upstream's buckets (or, with scope
 * fleet, from the fleet's slots through a lease: fleet/fleet-rate.ts), waiting as long as
 * the bulkhead's queue timeout and the deadline allow, and is otherwise
 * refused with 429 `rate_limited`. Once the answer reports its usage (for a
 * stream, when it ends) the estimate is corrected; a request that failed
 * without an answer (a 400, a 503, a timeout before any byte) gives its
 * reservation back, since the provider counted no tokens for it.
 */
import { type Clock, sleep } from '../../resilience/index.js';
import { enabledWhen, localError, type Handler, type Layer, type ProxyRequest } from '../handler.js';
import { expectedUsage } from '../expected-usage.js';
import { holding } from '../holding.js';

const estimatedTokens = (req: ProxyRequest) => {
  const expected = expectedUsage(req);
  return expected.input + expected.output;
};

/** What the layer needs of a limiter: a pod's RateLimiter, or the fleet's, whose take may wait for its store. */
export interface Limiter {
  readonly enabled: boolean;
  reservation(tokens: number): number;
  tryTake(tokens: number): number | Promise<number>;
  adjust(tokens: number): void;
}

/** `fleetLimiter`: the fleet's limiter of an upstream whose rate limit is the fleet's (rateLimit.scope). */
export function rateLimit(clock: Clock, fleetLimiter: (upstream: string) => Limiter | undefined = () => undefined): Layer {
  return enabledWhen((config) => config.rateLimit.requestsPerMinute > 0 || config.rateLimit.tokensPerMinute > 0, (inner) => {
    const limited: Handler = async (req, ctx) => {
      const { config } = req.upstream;
      const limiter: Limiter = (config.rateLimit.fleet ? fleetLimiter(config.name) : undefined) ?? req.upstream.limiter;
      const estimate = limiter.reservation(estimatedTokens(req));
      const until = Math.min(clock.now() + config.bulkhead.queueTimeoutMs, ctx.deadline);
      for (;;) {
        let wait = limiter.tryTake(estimate);
        if (typeof wait !== 'number') wait = await wait;
        if (wait <= 0) break;
        if (clock.now() + wait > until) {
          const whose = config.rateLimit.fleet ? 'its fleet\'s' : 'its';
          return localError(req, 429, 'rate_limited', `upstream ${config.name} is over ${whose} client-side rate limit`, 'rate-limited', wait);
        }
        ctx.trace?.event('breakwater.rate_limit.wait', { 'breakwater.wait_ms': Math.round(wait) });
        if (!(await sleep(clock, wait, ctx.signal))) return { kind: 'cancelled' };
      }
      return holding(
        () => inner(req, ctx),
        (end) => {
          const usage =
            end.kind === 'stream-ended'
              ? end.end.kind === 'complete' ? end.end.usage : undefined
              : end.kind === 'returned' && end.outcome.kind === 'answer'
                ? end.outcome.usage
                : undefined;
          if (usage) limiter.adjust(usage.input + usage.output - estimate);
          else if (end.kind === 'returned' && (end.outcome.kind === 'local' || (end.outcome.kind === 'answer' && end.outcome.failure !== undefined))) limiter.adjust(-estimate);
        },
      );
    };
    return (req, ctx) => (req.upstream.limiter.enabled || req.upstream.config.rateLimit.fleet ? limited(req, ctx) : inner(req, ctx));
  });
}
