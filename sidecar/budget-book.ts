/**
 * The token and cost budgets in force: the policy's, and each upstream's.
 * They outlive config changes: a new config with a budget of the same scope
 * reconfigures it, so editing a policy never gives back what was spent.
 */
import { type BudgetLimits, type Clock, TokenBudget } from './resilience/index.js';

/** Which budget: the whole policy's, or one upstream's. */
export interface BudgetScope {
  scope: 'policy' | 'upstream';
  /** The upstream, for an upstream's budget. */
  upstream?: string;
}

export interface KeptBudget extends BudgetScope {
  budget: TokenBudget;
}

const key = (s: BudgetScope) => (s.scope === 'policy' ? 'policy' : `upstream/${s.upstream}`);

export class BudgetBook {
  private kept = new Map<string, KeptBudget>();
  /** Per upstream, the budgets a request to it spends from: its own, then the policy's. */
  private byUpstream = new Map<string, KeptBudget[]>();

  constructor(private readonly clock: Clock) {}

  /** Puts these limits in force (undefined: no budget); budgets of scopes that stay keep what they spent. */
  configure(policy: BudgetLimits | undefined, upstreams: ReadonlyMap<string, BudgetLimits | undefined>): void {
    const next = new Map<string, KeptBudget>();
    const keep = (scope: BudgetScope, limits: BudgetLimits | undefined) => {
      if (!limits) return undefined;
      const current = this.kept.get(key(scope));
      if (current) current.budget.reconfigure(limits);
      const kept = current ?? { ...scope, budget: new TokenBudget(limits, this.clock) };
      next.set(key(scope), kept);
      return kept;
    };
    const whole = keep({ scope: 'policy' }, policy);
    const byUpstream = new Map<string, KeptBudget[]>();
    for (const [name, limits] of upstreams) {
      const own = keep({ scope: 'upstream', upstream: name }, limits);
      byUpstream.set(name, [own, whole].filter((b) => b !== undefined));
    }
    this.kept = next;
    this.byUpstream = byUpstream;
  }

  spendingFor(upstream: string): readonly KeptBudget[] {
    return this.byUpstream.get(upstream) ?? [];
  }

  get(scope: BudgetScope): TokenBudget | undefined {
    return this.kept.get(key(scope))?.budget;
  }

  all(): Iterable<KeptBudget> {
    return this.kept.values();
  }
}
