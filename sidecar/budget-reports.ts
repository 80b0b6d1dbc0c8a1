/**
 * The budgets as /status shows them and as reports tell the controller
 * (api/protocol.ts, BudgetReport): per budget, its window's end, limits and
 * what was spent (by the fleet, for a fleet budget, as the shared store last
 * said with this pod's spending since), whether the fleet keeps it, and
 * whether the shared store answers. A fleet budget this pod knows nothing of
 * yet in its window (the store has not answered it) shows spent as null, and
 * is left out of the reports: its own spending is not the fleet's.
 */
import type { BudgetReport } from '../api/index.js';
import type { BudgetBook } from './budget-book.js';

/** Each budget in force, for /status: the report's fields, its window, what is reserved, and this pod's own share of a fleet's. */
export function budgetStatus(book: BudgetBook) {
  return [...book.all()].map(({ scope, upstream, budget }) => {
    const { window, windowEndsAt, limits, spent, reserved } = budget.snapshot();
    const fleet = 'fleet' in budget ? budget.snapshot().fleet : undefined;
    return {
      scope,
      ...(upstream === undefined ? {} : { upstream }),
      window,
      windowEndsAt: new Date(windowEndsAt).toISOString(),
      limits,
      spent: fleet && !fleet.known ? null : spent,
      reserved,
      fleet: fleet !== undefined,
      ...(fleet ? { storeAvailable: fleet.store === 'shared', mode: fleet.store, podSpent: fleet.podSpent } : {}),
    };
  });
}

/** Each budget in force, as a report to the controller names it. */
export function budgetReports(book: BudgetBook): BudgetReport[] {
  return [...book.all()].flatMap(({ scope, upstream, budget }): BudgetReport[] => {
    const snapshot = budget.snapshot();
    const fleet = 'fleet' in budget ? budget.snapshot().fleet : undefined;
    if (fleet && !fleet.known) return [];
    return [{
      scope,
      ...(upstream === undefined ? {} : { upstream }),
      fleet: fleet !== undefined,
      windowEndsAt: snapshot.windowEndsAt,
      limits: { ...snapshot.limits },
      spent: { tokens: Math.round(snapshot.spent.tokens), cost: snapshot.spent.cost },
      ...(fleet ? { storeAvailable: fleet.store === 'shared' } : {}),
    }];
  });
}
