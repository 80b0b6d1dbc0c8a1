/**
 * The token and cost budgets in force: the policy's, and each upstream's,
 * each kept for this pod (TokenBudget) or for the fleet (FleetBudget, in the
 * shared store: fleet/). They outlive config changes: a new config with a
 * budget of the same scope reconfigures it, so editing a policy never gives
 * back what was spent; one that moves a budget between the pod and the
 * fleet carries this pod's spending over.
 */
import type { FleetBudget } from './fleet/index.js';
import { type BudgetLimits, type Clock, TokenBudget } from './resilience/index.js';

/** Which budget: the whole policy's, or one upstream's. */
export interface BudgetScope {
  scope: 'policy' | 'upstream';
  /** The upstream, for an upstream's budget. */
  upstream?: string;
}

/** A budget's limits, and whether the fleet keeps it. */
export type BookLimits = BudgetLimits & { fleet?: boolean };

export type Budget = TokenBudget | FleetBudget;

export interface KeptBudget extends BudgetScope {
  budget: Budget;
}

const key = (s: BudgetScope) => (s.scope === 'policy' ? 'policy' : `upstream/${s.upstream}`);
const isFleet = (b: Budget): b is FleetBudget => 'fleet' in b;

export class BudgetBook {
  private kept = new Map<string, KeptBudget>();
  /** Per upstream, the budgets a request to it spends from: its own, then the policy's. */
  private byUpstream = new Map<string, KeptBudget[]>();

  /** `fleetBudget` makes a budget kept for the fleet under a name; without it, every budget is the pod's. */
  constructor(
    private readonly clock: Clock,
    private readonly fleetBudget?: (what: string, limits: BudgetLimits) => FleetBudget,
  ) {}

  /** Puts these limits in force (undefined: no budget); budgets of scopes that stay keep what they spent. */
  configure(policy: BookLimits | undefined, upstreams: ReadonlyMap<string, BookLimits | undefined>): void {
    const next = new Map<string, KeptBudget>();
    const keep = (scope: BudgetScope, limits: BookLimits | undefined) => {
      if (!limits) return undefined;
      const current = this.kept.get(key(scope));
      const fleet = limits.fleet === true && this.fleetBudget !== undefined;
      if (current && isFleet(current.budget) === fleet) {
        current.budget.reconfigure(limits);
        next.set(key(scope), current);
        return current;
      }
      const budget = fleet ? this.fleetBudget!(key(scope), limits) : new TokenBudget(limits, this.clock);
      if (current) {
        // Between the pod and the fleet: what this pod spent in the window goes with it.
        if (isFleet(budget)) budget.adopt(current.budget.saved());
        else budget.restore(current.budget.saved());
        closeBudget(current.budget);
      }
      const kept = { ...scope, budget };
      next.set(key(scope), kept);
      return kept;
    };
    const whole = keep({ scope: 'policy' }, policy);
    const byUpstream = new Map<string, KeptBudget[]>();
    for (const [name, limits] of upstreams) {
      const own = keep({ scope: 'upstream', upstream: name }, limits);
      byUpstream.set(name, [own, whole].filter((b) => b !== undefined));
    }
    for (const [k, gone] of this.kept) if (!next.has(k)) closeBudget(gone.budget);
    this.kept = next;
    this.byUpstream = byUpstream;
  }

  spendingFor(upstream: string): readonly KeptBudget[] {
    return this.byUpstream.get(upstream) ?? [];
  }

  get(scope: BudgetScope): Budget | undefined {
    return this.kept.get(key(scope))?.budget;
  }

  all(): Iterable<KeptBudget> {
    return this.kept.values();
  }

  close(): void {
    for (const { budget } of this.kept.values()) closeBudget(budget);
  }
}

function closeBudget(budget: Budget): void {
  if (isFleet(budget)) budget.close();
}
