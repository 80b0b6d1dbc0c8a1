/**
 * Retries on one upstream: after an attempt fails with a class in `retry.on`
 * (and, for error statuses, one in `statusCodes`), another attempt follows
 * after a backoff or the upstream's Retry-After, while attempts, the deadline
 * and the retry budget allow. A retry is taken from the budget before it is
 * tried and given back if the breaker below refuses it: a retry never goes
 * through an open breaker, and the last answer stands. A timeout of the
 * addressed upstream is not retried when a fallback upstream would take it:
 * a route that never answers costs one attempt, not the whole deadline. In a
 * mid-stream recovery, the break of this upstream's stream counts as its
 * first attempt. A request that does not replay safely (a pass-through POST,
 * which may create a file, a batch or an image each time) is sent again only
 * after a failure that says the upstream did not take it.
 */
import type { FailureClass } from '../../../api/index.js';
import type { Metrics } from '../../metrics.js';
import { backoffDelay, type Clock, sleep } from '../../resilience/index.js';
import { localError, NOT_TAKEN, refusedByBreaker, type AnswerOutcome, type Layer, type LocalOutcome, type Outcome, type ProxyRequest, type StopReason } from '../handler.js';
import { retryAfterMs } from '../upstream/retry-after.js';
import type { TraceScope } from '../trace-scope.js';
import { BW } from '../../tracing/genai.js';

type Failed = AnswerOutcome | LocalOutcome;

/** The outcome a failed attempt ends the request with when no retry follows (and why, on the tier's span when traced). */
function stopWith(last: Failed, stopped: StopReason, trace: TraceScope | undefined): Outcome {
  trace?.set({ [BW.retryStopped]: stopped });
  if (last.kind === 'answer') return { ...last, stopped };
  if (stopped !== 'budget') return last;
  return { ...last, status: 503, code: 'retry_budget_exhausted', message: `${last.message}; retry budget exhausted`, retryAfterMs: 1000 };
}

export interface RetryDeps {
  clock: Clock;
  metrics: Metrics;
  random?: () => number;
}

/** A mid-stream recovery's break, when it happened on this upstream: a failed attempt already made. */
function brokeHere(req: ProxyRequest): LocalOutcome | undefined {
  const broke = req.resume?.broke;
  if (broke?.upstream !== req.upstream.config.name) return undefined;
  const code = broke.failure === 'timeout' ? 'upstream_timeout' : 'upstream_unavailable';
  return localError(req, broke.failure === 'timeout' ? 504 : 502, code, `${broke.upstream}: ${broke.failure}: the stream broke after it started`, broke.failure);
}

export function retry({ clock, metrics, random }: RetryDeps): Layer {
  return (inner) => async (req, ctx) => {
    const { upstream } = req;
    const { name, retry: policy } = upstream.config;
    upstream.budget.recordRequest();
    let previousDelay = 0;
    // In a recovery, the break of this upstream's stream was its first attempt: whether another follows is decided as after any.
    let last: Failed | undefined = brokeHere(req);
    /** Attempts made in an earlier tier that count here (the break): a trace numbers the attempts of this tier. */
    const before = last ? 1 : 0;
    for (let n = before + 1; ; n++) {
      if (last) {
        // Should there be another attempt, and after how long?
        const failure = last.failure as FailureClass;
        if (req.bodyStream) return stopWith(last, 'body-not-replayable', ctx.trace);
        if (!ctx.dialect.replaysSafely && !NOT_TAKEN.has(failure)) return stopWith(last, 'not-idempotent', ctx.trace);
        if (failure === 'timeout' && name === ctx.primary && upstream.config.timeoutFallsBack) return stopWith(last, 'falls-back', ctx.trace);
        if (!policy.on.has(failure) || (last.kind === 'answer' && last.status >= 400 && !policy.statusCodes.has(last.status))) return stopWith(last, 'not-retryable', ctx.trace);
        if (n > policy.attempts) return stopWith(last, 'attempts-exhausted', ctx.trace);
        const asked = last.kind === 'answer' && policy.respectRetryAfter ? retryAfterMs(last.headers, clock.wallTime()) : undefined;
        if (asked !== undefined && asked > policy.maxRetryAfterMs) return stopWith(last, 'retry-after-too-long', ctx.trace);
        // A Retry-After is waited out, but never less than the backoff: `Retry-After: 0` (or a date gone by) from an
        // upstream in trouble would otherwise send every attempt back to back, from every pod at once.
        const backoff = backoffDelay(policy.backoff, n - 1, previousDelay, random);
        const wait = asked === undefined ? backoff : Math.max(asked, backoff);
        previousDelay = wait;
        if (clock.now() + wait >= ctx.deadline) return stopWith(last, 'deadline', ctx.trace);
        if (!upstream.budget.tryWithdraw()) {
          metrics.budgetRefusals.inc({ upstream: name });
          return stopWith(last, 'budget', ctx.trace);
        }
        ctx.trace?.event('breakwater.retry', { [BW.attempt]: n - before, [BW.retryReason]: failure, [BW.retryWaitMs]: Math.round(wait), [BW.retryAfterMs]: asked });
        if (!(await sleep(clock, wait, ctx.signal))) {
          upstream.budget.refund();
          return { kind: 'cancelled' };
        }
      }
      const outcome = await inner(req, ctx);
      // The breaker below refused the attempt: none was made.
      if (refusedByBreaker(outcome)) {
        if (!last) return outcome;
        upstream.budget.refund();
        return stopWith(last, 'circuit-open', ctx.trace);
      }
      ctx.report.attempted();
      if (last) metrics.retries.inc({ upstream: name, class: last.failure });
      const failure = outcome.kind === 'stream' || outcome.kind === 'cancelled' ? undefined : (outcome.failure as FailureClass | undefined);
      metrics.attempts.inc({ upstream: name, class: outcome.kind === 'cancelled' ? 'cancelled' : (failure ?? 'none') });
      if (outcome.kind === 'cancelled' || outcome.kind === 'stream' || failure === undefined) return outcome;
      last = outcome as Failed;
    }
  };
}
