/**
 * What a lease counter (lease-counter.ts) knows and holds of one fleet-wide
 * counter in the current window: the limits; what this pod spent, had
 * confirmed, holds, has in flight and waiting; the fleet's totals as it knows
 * them (`seen`); its mode and local allowance; its pace. The counter's moves
 * (taking, syncing, timing) are in lease-counter.ts.
 */
import { LEAD_MS, type CounterDeps, type CounterSpec, type Units } from './lease-settings.js';
import { leaseTarget, localShare, type Seen } from './lease-plan.js';
import { UseRate } from './use-rate.js';

export const zeros = (n: number): Units => new Array<number>(n).fill(0);

export class LeaseBook {
  protected start = -1;
  protected limits: Units = [];
  /** All this pod spent in the window; what the store last confirmed of it; what the store says it holds; in flight; waiting. */
  protected spent: Units = [];
  protected reported: Units = [];
  protected held: Units = [];
  protected reserved: Units;
  protected waiting: Units = [];
  /** The fleet's totals as this pod knows them in this window (undefined: it knows nothing of it yet). */
  protected seen: Seen | undefined;
  protected mode: 'shared' | 'local-share' = 'shared';
  /** In local-share mode: what this pod may spend past what it reported. */
  protected allowance: Units = [];
  protected readonly use: UseRate;
  /** Every local share handed out so far (the bound of what the fleet can overspend while its store is away). */
  readonly sharesGiven: Units;

  constructor(
    protected spec: CounterSpec,
    protected readonly deps: CounterDeps,
    readonly units: number,
  ) {
    this.reserved = zeros(units);
    this.use = new UseRate(units);
    this.sharesGiven = zeros(units);
    this.roll();
  }

  /** What this pod knew of the fleet's spent in the window starting at `start` before a restart: it spends its local share from it. */
  know(start: number, fleetSpent: Units): void {
    this.roll();
    if (start !== this.start) return;
    const spent = fleetSpent.map((s, u) => Math.max(s, this.seen?.spent[u] ?? 0));
    this.seen = { spent, held: this.seen?.held ?? zeros(this.units) };
    if (this.mode === 'local-share') this.shareOut();
  }

  /** The window, the fleet's spending as this pod knows it, and whether the store is in use. */
  view() {
    this.roll();
    return {
      windowStart: this.start,
      windowEndsAt: this.start + this.spec.windowMs,
      limits: [...this.limits],
      /** The fleet's spending: as the store last said, with this pod's since (undefined: nothing known of this window). */
      fleetSpent: this.seen ? this.limits.map((_, u) => this.fleetSpent(u)) : undefined,
      /** Held by leases elsewhere and this pod's requests in flight: limit - fleetSpent - heldElsewhere is what this pod can get. */
      heldElsewhere: this.limits.map((_, u) => Math.max(0, (this.seen?.held[u] ?? 0) - this.held[u]!) + this.reserved[u]!),
      podSpent: [...this.spent],
      /** What of podSpent the store has not confirmed. */
      unreported: this.limits.map((_, u) => this.unreported(u)),
      held: [...this.held],
      mode: this.mode,
    };
  }

  protected unreported(u: number): number {
    return this.spent[u]! - this.reported[u]!;
  }

  /** The fleet's spent as this pod knows it: as last seen, with this pod's since. */
  protected fleetSpent(u: number): number {
    return (this.seen?.spent[u] ?? 0) + this.unreported(u);
  }

  /** What this pod may still take of unit `u`. */
  protected available(u: number): number {
    const lease = this.mode === 'shared' ? this.held[u]! : this.allowance[u]!;
    return lease - this.unreported(u) - this.reserved[u]!;
  }

  protected fits(amount: Units): boolean {
    for (let u = 0; u < this.units; u++) if (Number.isFinite(this.limits[u]) && amount[u]! > 0 && this.available(u) < amount[u]!) return false;
    return true;
  }

  protected untilRoll(): number {
    return Math.max(0, this.start + this.spec.windowMs - this.deps.clock.wallTime());
  }

  protected target(u: number): number {
    return leaseTarget(this.limits[u]!, this.seen, u, this.held[u]!, this.deps.pods() ?? 1, this.spec.maxLeaseShare, this.use.demand(this.deps.clock.now(), u, LEAD_MS));
  }

  /** What this pod may spend while the store is away: what it held, and 1/pods of what the fleet had left (nothing, of a window it knows nothing of). */
  protected shareOut(): void {
    const share = localShare(this.limits, this.seen, this.deps.pods());
    this.allowance = share.map((s, u) => this.held[u]! + s);
    share.forEach((s, u) => Number.isFinite(s) && (this.sharesGiven[u]! += s));
  }

  protected roll(): void {
    const length = this.spec.windowMs;
    const start = Math.floor(this.deps.clock.wallTime() / length) * length;
    // The same window, or the wall clock stepped back: what was spent stays spent.
    if (start <= this.start) return;
    // Running when the window started, this pod knows the fleet had spent nothing of it then.
    this.seen = this.start === -1 ? undefined : { spent: zeros(this.units), held: zeros(this.units) };
    this.start = start;
    this.limits = this.spec.limits(start);
    this.spent = zeros(this.units);
    this.reported = zeros(this.units);
    this.held = zeros(this.units);
    this.waiting = zeros(this.units);
    if (this.mode === 'local-share') this.shareOut();
  }
}
