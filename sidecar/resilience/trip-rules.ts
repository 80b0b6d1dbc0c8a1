/**
 * When a closed circuit breaker should open: consecutive failures, or the
 * failure rate or slow-call rate over a sliding window once it holds enough
 * calls. It only counts and judges; the breaker's state machine acts on it.
 */
import type { Clock } from './clock.js';
import { SlidingCounts } from './sliding-counts.js';

export interface TripSettings {
  consecutiveFailures: number;
  failureRate: { thresholdPercent: number; minRequests: number; windowMs: number };
  slowCall: { thresholdPercent: number; durationMs: number };
}

export interface CallOutcome {
  failure: boolean;
  durationMs: number;
}

const CALLS = 0;
const FAILURES = 1;
const SLOW = 2;

export class TripRules {
  private consecutive = 0;
  private readonly window: SlidingCounts;

  constructor(
    private readonly settings: TripSettings,
    clock: Clock,
  ) {
    this.window = new SlidingCounts(settings.failureRate.windowMs, clock, 3);
  }

  /** Counts a call's outcome; returns why the breaker should open now, if it should. */
  record(outcome: CallOutcome): string | undefined {
    this.window.add(CALLS);
    if (outcome.failure) this.window.add(FAILURES);
    if (outcome.durationMs >= this.settings.slowCall.durationMs) this.window.add(SLOW);
    this.consecutive = outcome.failure ? this.consecutive + 1 : 0;
    return this.reason();
  }

  /** Forgets every call (the breaker closed). */
  clear(): void {
    this.consecutive = 0;
    this.window.clear();
  }

  private reason(): string | undefined {
    const { consecutiveFailures, failureRate, slowCall } = this.settings;
    if (consecutiveFailures > 0 && this.consecutive >= consecutiveFailures) return `${this.consecutive} consecutive failures`;
    const calls = this.window.total(CALLS);
    if (calls < failureRate.minRequests) return undefined;
    const failures = (100 * this.window.total(FAILURES)) / calls;
    if (failureRate.thresholdPercent > 0 && failures >= failureRate.thresholdPercent) return `failure rate ${failures.toFixed(0)}% over ${calls} calls`;
    const slow = (100 * this.window.total(SLOW)) / calls;
    if (slowCall.thresholdPercent > 0 && slow >= slowCall.thresholdPercent) return `slow-call rate ${slow.toFixed(0)}% over ${calls} calls`;
    return undefined;
  }
}
