/**
 * A retry budget in the manner of Linkerd and Envoy: over a sliding window,
 * retries may not exceed `minPerSecond × window` plus `ratio`% of requests.
 * It keeps retries from multiplying load when an upstream is struggling.
 */
import type { Clock } from './clock.js';
import { SlidingCounts } from './sliding-counts.js';

export interface RetryBudgetSettings {
  ratioPercent: number;
  minPerSecond: number;
  windowMs: number;
}

const REQUESTS = 0;
const RETRIES = 1;

export class RetryBudget {
  private readonly counts: SlidingCounts;

  constructor(
    private readonly settings: RetryBudgetSettings,
    clock: Clock,
  ) {
    this.counts = new SlidingCounts(settings.windowMs, clock, 2);
  }

  /** Counts an original request: each one deposits `ratio`% of a retry. */
  recordRequest(): void {
    this.counts.add(REQUESTS);
  }

  /** Retries the budget allows in the current window. */
  allowance(): number {
    const { ratioPercent, minPerSecond, windowMs } = this.settings;
    return (minPerSecond * windowMs) / 1000 + (ratioPercent / 100) * this.counts.total(REQUESTS);
  }

  /** True when the budget has a retry to give now. */
  canWithdraw(): boolean {
    return this.counts.total(RETRIES) + 1 <= this.allowance();
  }

  /** Gives back a retry taken by `tryWithdraw` that was never made. */
  refund(): void {
    this.counts.add(RETRIES, -1);
  }

  /** Takes one retry from the budget; false when the budget is spent. */
  tryWithdraw(): boolean {
    if (!this.canWithdraw()) return false;
    this.counts.add(RETRIES);
    return true;
  }
}
