/**
 * Event counts over a sliding time window, kept in a fixed ring of buckets:
 * O(buckets) memory whatever the traffic, and old buckets expire lazily.
 */
import type { Clock } from './clock.js';

export class SlidingCounts {
  private readonly bucketMs: number;
  private readonly epochs: Float64Array;
  private readonly counts: Float64Array;

  /** `series` is how many independent counters share the window (e.g. calls, failures, slow). */
  constructor(
    windowMs: number,
    private readonly clock: Clock,
    private readonly series = 1,
    private readonly buckets = 10,
  ) {
    this.bucketMs = Math.max(1, windowMs / buckets);
    this.epochs = new Float64Array(buckets).fill(-Infinity);
    this.counts = new Float64Array(buckets * series);
  }

  add(series: number, n = 1): void {
    const epoch = Math.floor(this.clock.now() / this.bucketMs);
    const slot = epoch % this.buckets;
    if (this.epochs[slot] !== epoch) {
      this.epochs[slot] = epoch;
      this.counts.fill(0, slot * this.series, (slot + 1) * this.series);
    }
    this.counts[slot * this.series + series]! += n;
  }

  /** Sum of one series over the buckets still inside the window. */
  total(series: number): number {
    const oldest = Math.floor(this.clock.now() / this.bucketMs) - this.buckets + 1;
    let sum = 0;
    for (let slot = 0; slot < this.buckets; slot++) {
      if (this.epochs[slot]! >= oldest) sum += this.counts[slot * this.series + series]!;
    }
    return sum;
  }

  clear(): void {
    this.epochs.fill(-Infinity);
    this.counts.fill(0);
  }
}
