/**
 * A token and cost budget kept for the fleet (`scope: fleet`): the same
 * surface as a pod's TokenBudget (resilience/token-budget.ts), counted
 * through a lease counter in the shared store. Cost is counted in
 * millionths, so the store adds whole numbers.
 */
import type { BudgetAdmission, BudgetLimits, SavedBudget, Spend } from '../resilience/index.js';
import { HEARTBEAT_MS, LeaseCounter, type Admission, type CounterDeps, type CounterSpec } from './lease-counter.js';

const WINDOW_MS = { hour: 3_600_000, day: 86_400_000 } as const;
/** Cost in the store: millionths of the prices' currency. */
const MICRO = 1_000_000;
/** What the fleet's pods hold in leases beyond their requests in flight, together: at most 2% of a limit. */
export const MAX_LEASE_SHARE = 0.02;
const UNITS = ['tokens', 'cost'] as const;

const toUnits = (s: Spend) => [s.tokens, Math.ceil(s.cost * MICRO)];
const toSpend = ([tokens, cost]: number[]): Spend => ({ tokens: tokens!, cost: cost! / MICRO });

export class FleetBudget {
  readonly fleet = true;
  private readonly counter: LeaseCounter;

  constructor(
    private limits: BudgetLimits,
    deps: CounterDeps,
    /** The counter's name in the store, such as budget/policy or budget/upstream/<name>. */
    private readonly key: (windowStart: number) => string,
  ) {
    this.counter = new LeaseCounter(this.spec(), deps, 2);
  }

  reconfigure(limits: BudgetLimits): void {
    this.limits = limits;
    this.counter.reconfigure(this.spec());
  }

  /** Reserves `amount` if it fits in this pod's lease (or local share); may wait for the store, at most 50 ms. */
  tryReserve(amount: Spend): BudgetAdmission | Promise<BudgetAdmission> {
    const admission = this.counter.take(toUnits(amount));
    return admission instanceof Promise ? admission.then(budgetAdmission) : budgetAdmission(admission);
  }

  settle(reserved: Spend, used: Spend): void {
    this.counter.settle(toUnits(reserved), toUnits(used));
  }

  /**
   * As TokenBudget's, for /status and the gauges: spent is the fleet's (this pod's alone while it knows nothing
   * of the fleet's in the window: fleet.known false); reserved what this pod cannot have of the rest.
   */
  snapshot() {
    const view = this.counter.view();
    return {
      window: this.limits.window,
      windowEndsAt: view.windowEndsAt,
      limits: { tokens: this.limits.tokens, cost: this.limits.cost },
      spent: toSpend(view.fleetSpent ?? view.podSpent),
      reserved: toSpend(view.heldElsewhere),
      fleet: { podSpent: toSpend(view.podSpent), store: view.mode, known: view.fleetSpent !== undefined },
    };
  }

  /** What this pod spent in the window (for a budget that becomes the pod's again), the fleet's spent as it knew it, and what the store had not confirmed. */
  saved(): SavedBudget {
    const view = this.counter.view();
    const told = view.fleetSpent?.map((s, u) => s - view.unreported[u]!);
    return { windowStart: view.windowStart, ...toSpend(view.podSpent), ...(told ? { fleetSpent: toSpend(told) } : {}), unreported: toSpend(view.unreported) };
  }

  /**
   * After a restart (a new pod in the store, where what it reported stays counted): what it knew of the fleet's
   * spent, so it has a local share while the store is away (and a floor, should the store have lost its data),
   * and what it spent that the store had not confirmed, reported with its own.
   */
  restore(saved: SavedBudget): void {
    const { windowStart } = this.counter.view();
    if (saved.windowStart !== windowStart) return;
    if (saved.fleetSpent) this.counter.know(windowStart, toUnits(saved.fleetSpent));
    if (saved.unreported) this.counter.settle([0, 0], toUnits(saved.unreported));
  }

  /** What this pod spent in the window while the budget was its own: added to the fleet's at the next sync. */
  adopt(saved: SavedBudget): void {
    if (saved.windowStart === this.counter.view().windowStart) this.counter.settle([0, 0], toUnits(saved));
  }

  close(): void {
    this.counter.close();
  }

  private spec(): CounterSpec {
    const limits = [this.limits.tokens > 0 ? this.limits.tokens : Infinity, this.limits.cost > 0 ? Math.ceil(this.limits.cost * MICRO) : Infinity];
    return { windowMs: WINDOW_MS[this.limits.window], limits: () => limits, key: this.key, maxLeaseShare: MAX_LEASE_SHARE, refreshMs: HEARTBEAT_MS };
  }
}

function budgetAdmission(a: Admission): BudgetAdmission {
  return a.ok ? a : { ok: false, limit: UNITS[a.unit] ?? 'tokens', retryAfterMs: a.retryAfterMs, reason: a.reason };
}
