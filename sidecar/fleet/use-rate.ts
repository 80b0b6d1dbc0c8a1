/**
 * How much of a counter this pod has been using, per unit: what it took over
 * the last two windows of RATE_WINDOW_MS (over the time since it became busy,
 * if less, and at least MIN_SPAN_MS: a pod that just got busy is not taken
 * for one a tenth as busy), and the largest single take. Lease sizes follow
 * it, so a busy pod holds more and an idle one nothing.
 */
const RATE_WINDOW_MS = 5000;
const MIN_SPAN_MS = 1000;

export class UseRate {
  private at = 0;
  private now: number[];
  private before: number[];
  private largestNow: number[];
  private largestBefore: number[];
  /** When this pod last began taking after two windows without a take. */
  private busySince = -Infinity;

  constructor(private readonly units: number) {
    this.now = this.before = this.largestNow = this.largestBefore = new Array<number>(units).fill(0);
  }

  add(at: number, amount: readonly number[]): void {
    this.shift(at);
    if (this.now.every((n) => n === 0) && this.before.every((n) => n === 0)) this.busySince = at;
    this.now = this.now.map((n, u) => n + amount[u]!);
    this.largestNow = this.largestNow.map((n, u) => Math.max(n, amount[u]!));
  }

  /** What unit `u` should have ready for `leadMs` of use at this pace, and for the next two takes of the largest size seen. */
  demand(at: number, u: number, leadMs: number): number {
    this.shift(at);
    const span = Math.min(2 * RATE_WINDOW_MS, Math.max(MIN_SPAN_MS, at - this.busySince));
    const perMs = (this.now[u]! + this.before[u]!) / span;
    return Math.max(perMs * leadMs, 2 * Math.max(this.largestNow[u]!, this.largestBefore[u]!));
  }

  private shift(at: number): void {
    const windows = Math.floor((at - this.at) / RATE_WINDOW_MS);
    if (windows <= 0) return;
    const zeros = new Array<number>(this.units).fill(0);
    this.at += windows * RATE_WINDOW_MS;
    this.before = windows === 1 ? this.now : zeros;
    this.largestBefore = windows === 1 ? this.largestNow : zeros;
    this.now = zeros;
    this.largestNow = zeros;
  }
}
