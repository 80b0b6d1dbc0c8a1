/**
 * The attempts of one request on one upstream: breaker admission before each
 * attempt, the outcome reported to the breaker, and the retry decision (class,
 * status, attempts left, Retry-After within its cap, deadline, budget).
 * A retry never goes through an open breaker: it stops with the last answer.
 */
import type { FailureClass } from '../../api/index.js';
import type { Metrics } from '../metrics.js';
import { backoffDelay } from '../resilience/backoff.js';
import type { BreakerPermit, CircuitBreaker } from '../resilience/circuit-breaker.js';
import type { Clock } from '../resilience/clock.js';
import type { LocalErrorCode } from './api-dialects.js';
import { apiOfPath, errorBodyFor } from './answer-shapes.js';
import { attempt, type AttemptResult } from './attempt.js';
import { classifyStatus } from './classify.js';
import type { ProxyRequest } from './proxy-request.js';
import type { Endpoint } from './upstream-state.js';
import { retryAfterMs } from './retry-after.js';

/** Why the loop made no further attempt. */
export type StopReason = 'not-retryable' | 'attempts-exhausted' | 'retry-after-too-long' | 'deadline' | 'budget' | 'circuit-open' | 'body-not-replayable';

type Answer = Extract<AttemptResult, { kind: 'answer' }>;
type Stream = Extract<AttemptResult, { kind: 'stream' }>;

export type Final =
  | { kind: 'answer'; answer: Answer; attempts: number; stopped?: StopReason }
  | { kind: 'stream'; stream: Stream; attempts: number; breaker: CircuitBreaker; permit: BreakerPermit; /** Called once the stream has ended. */ onEnd: () => void }
  | { kind: 'local'; status: number; code: LocalErrorCode; message: string; retryAfterMs?: number; failure: FailureClass | 'unavailable'; attempts: number }
  | { kind: 'cancelled'; attempts: number };

export interface LoopEnv {
  clock: Clock;
  metrics: Metrics;
  random?: () => number;
}

/** Waits `ms`; false if `signal` aborted first. */
export function sleep(clock: Clock, ms: number, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve(false);
    const onAbort = () => {
      clock.clearTimer(timer);
      resolve(false);
    };
    const timer = clock.setTimer(() => {
      signal.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * One attempt, unless the policy injects a fault into it: a delay before it,
 * or an answer with the abort status in the API's error shape instead of it.
 */
async function attemptWithFaults(req: ProxyRequest, endpoint: Endpoint, env: LoopEnv): Promise<AttemptResult> {
  const random = env.random ?? Math.random;
  const { name, faults } = req.upstream.config;
  for (const fault of faults) {
    if (random() * 100 >= fault.percent) continue;
    if (fault.delayMs !== undefined) {
      env.metrics.faults.inc({ upstream: name, kind: 'delay' });
      if (!(await sleep(env.clock, Math.min(fault.delayMs, Math.max(0, req.deadline - env.clock.now())), req.signal))) return { kind: 'cancelled' };
    }
    if (fault.abortStatus !== undefined) {
      env.metrics.faults.inc({ upstream: name, kind: 'abort' });
      const body = errorBodyFor(apiOfPath(req.appPath), fault.abortStatus, 'fault injected by the Breakwater policy');
      return { kind: 'answer', status: fault.abortStatus, headers: { 'content-type': 'application/json', 'x-breakwater-fault': 'abort' }, body: Buffer.from(body), failure: classifyStatus(fault.abortStatus, body) };
    }
  }
  return attempt(req, endpoint, env.clock);
}

/** The final answer for a failed attempt after which no retry comes. */
function stopWith(result: Answer | Extract<AttemptResult, { kind: 'error' }>, attempts: number, stopped: StopReason, upstream: string): Final {
  if (result.kind === 'answer') return { kind: 'answer', answer: result, attempts, stopped };
  if (stopped === 'budget') {
    return { kind: 'local', status: 503, code: 'retry_budget_exhausted', message: `${upstream}: ${result.detail}; retry budget exhausted`, retryAfterMs: 1000, failure: result.failure, attempts };
  }
  if (result.failure === 'timeout') {
    return { kind: 'local', status: 504, code: 'upstream_timeout', message: `${upstream}: ${result.detail}`, failure: 'timeout', attempts };
  }
  return { kind: 'local', status: 502, code: 'upstream_unavailable', message: `${upstream}: ${result.failure}: ${result.detail}`, retryAfterMs: 1000, failure: result.failure, attempts };
}

export async function runAttempts(req: ProxyRequest, env: LoopEnv): Promise<Final> {
  const { clock, metrics } = env;
  const upstream = req.upstream;
  const { name } = upstream.config;
  const retry = upstream.config.retry;
  const failOn = upstream.config.breaker.failOn;
  upstream.budget.recordRequest();
  let previousDelay = 0;
  let last: Answer | Extract<AttemptResult, { kind: 'error' }> | undefined;
  for (let n = 1; ; n++) {
    const admission = upstream.choose(req.model);
    if (!admission.ok) {
      if (last) return stopWith(last, n - 1, 'circuit-open', name);
      const scope = req.model && upstream.config.breaker.scope === 'model' ? ` (model ${req.model})` : '';
      return {
        kind: 'local',
        status: 503,
        code: 'circuit_open',
        message: `circuit breaker for upstream ${name}${scope} is open`,
        retryAfterMs: admission.retryAfterMs,
        failure: 'unavailable',
        attempts: n - 1,
      };
    }
    if (last) {
      // A retry is spent from the budget and counted only once the breaker lets it through.
      if (!upstream.budget.tryWithdraw()) {
        admission.breaker.release(admission.permit);
        metrics.budgetRefusals.inc({ upstream: name });
        return stopWith(last, n - 1, 'budget', name);
      }
      metrics.retries.inc({ upstream: name, class: last.failure! });
    }
    const { breaker, endpoint } = admission;
    const started = clock.now();
    endpoint.outstanding++;
    const result = await attemptWithFaults(req, endpoint, env);
    if (result.kind === 'cancelled') {
      endpoint.outstanding--;
      breaker.release(admission.permit);
      return { kind: 'cancelled', attempts: n };
    }
    if (result.kind === 'stream') {
      metrics.attempts.inc({ upstream: name, class: 'none' });
      return { kind: 'stream', stream: result, attempts: n, breaker, permit: admission.permit, onEnd: () => endpoint.outstanding-- };
    }
    endpoint.outstanding--;
    const failure = result.failure;
    metrics.attempts.inc({ upstream: name, class: failure ?? 'none' });
    breaker.record(admission.permit, { failure: failure !== undefined && failOn.has(failure), durationMs: clock.now() - started });
    if (result.kind === 'answer' && failure === undefined) return { kind: 'answer', answer: result, attempts: n };
    last = result;

    // Should there be another attempt, and after how long?
    if (req.bodyStream) return stopWith(result, n, 'body-not-replayable', name);
    // statusCodes narrows error statuses; an invalid 200 is retried by class alone.
    if (!retry.on.has(failure!) || (result.kind === 'answer' && result.status >= 400 && !retry.statusCodes.has(result.status))) return stopWith(result, n, 'not-retryable', name);
    if (n >= retry.attempts) return stopWith(result, n, 'attempts-exhausted', name);
    const asked = result.kind === 'answer' && retry.respectRetryAfter ? retryAfterMs(result.headers, Date.now()) : undefined;
    if (asked !== undefined && asked > retry.maxRetryAfterMs) return stopWith(result, n, 'retry-after-too-long', name);
    const wait = asked ?? backoffDelay(retry.backoff, n, previousDelay, env.random);
    previousDelay = wait;
    if (clock.now() + wait >= req.deadline) return stopWith(result, n, 'deadline', name);
    if (!upstream.budget.canWithdraw()) {
      metrics.budgetRefusals.inc({ upstream: name });
      return stopWith(result, n, 'budget', name);
    }
    if (!(await sleep(clock, wait, req.signal))) return { kind: 'cancelled', attempts: n };
  }
}
