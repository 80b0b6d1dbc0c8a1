/**
 * Good and total events of one SLI in one-minute buckets over a rolling
 * window (up to a day), so the SLI over the SLO window and the burn rates
 * over the alerting windows (5m to 6h) are read from the same counts. A
 * burn rate is the error rate over a window divided by the error budget
 * (1 − objective): 1 spends the budget exactly over the SLO window.
 */
import type { Clock } from './clock.js';

const BUCKET_MS = 60_000;

/** The windows multi-window, multi-burn-rate alerts read (Google SRE workbook, chapter 5). */
export const BURN_WINDOWS = { '5m': 300_000, '30m': 1_800_000, '1h': 3_600_000, '6h': 21_600_000 } as const;

export interface SliCounts {
  good: number;
  total: number;
}

export class SliWindow {
  private readonly good: Float64Array;
  private readonly total: Float64Array;
  /** The minute each slot counts (slots of older minutes are stale). */
  private readonly minute: Float64Array;

  constructor(
    /** The longest window ever asked about. */
    spanMs: number,
    private readonly clock: Clock,
  ) {
    const slots = Math.ceil(spanMs / BUCKET_MS);
    this.good = new Float64Array(slots);
    this.total = new Float64Array(slots);
    this.minute = new Float64Array(slots).fill(-1);
  }

  record(good: boolean): void {
    const minute = Math.floor(this.clock.now() / BUCKET_MS);
    const slot = minute % this.minute.length;
    if (this.minute[slot] !== minute) {
      this.minute[slot] = minute;
      this.good[slot] = 0;
      this.total[slot] = 0;
    }
    this.total[slot]!++;
    if (good) this.good[slot]!++;
  }

  /** Events in the last `windowMs` (whole minutes, the current one included). */
  counts(windowMs: number): SliCounts {
    const now = Math.floor(this.clock.now() / BUCKET_MS);
    const oldest = now - Math.min(Math.ceil(windowMs / BUCKET_MS), this.minute.length) + 1;
    let good = 0;
    let total = 0;
    for (let slot = 0; slot < this.minute.length; slot++) {
      const minute = this.minute[slot]!;
      if (minute < oldest || minute > now) continue;
      good += this.good[slot]!;
      total += this.total[slot]!;
    }
    return { good, total };
  }

  /** Error rate over `windowMs` divided by the error budget of `objective` (a ratio below 1); 0 without events. */
  burnRate(windowMs: number, objective: number): number {
    const { good, total } = this.counts(windowMs);
    return total === 0 ? 0 : (total - good) / total / (1 - objective);
  }
}
