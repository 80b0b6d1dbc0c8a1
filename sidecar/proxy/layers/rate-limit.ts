/**
 * Client-side rate limit (policy `rateLimit`): a request takes one request
 * and its estimated tokens from the upstream's buckets, waiting as long as
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

export function rateLimit(clock: Clock): Layer {
  return enabledWhen((config) => config.rateLimit.requestsPerMinute > 0 || config.rateLimit.tokensPerMinute > 0, (inner) => {
    const limited: Handler = async (req, ctx) => {
      const { limiter, config } = req.upstream;
      const estimate = limiter.reservation(estimatedTokens(req));
      const until = Math.min(clock.now() + config.bulkhead.queueTimeoutMs, ctx.deadline);
      for (let wait = limiter.tryTake(estimate); wait > 0; wait = limiter.tryTake(estimate)) {
        if (clock.now() + wait > until) {
          return localError(req, 429, 'rate_limited', `upstream ${config.name} is over its client-side rate limit`, 'rate-limited', wait);
        }
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
    return (req, ctx) => (req.upstream.limiter.enabled ? limited(req, ctx) : inner(req, ctx));
  });
}
