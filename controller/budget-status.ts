/**
 * A policy's budgets in its status, and whether its pods reach the shared
 * store (the SharedStateAvailable condition), from the spec and the pods'
 * reports. The limits and windows are the spec's; what was spent comes from
 * the pods, which their owners control: for a budget the fleet keeps, each
 * pod reports the fleet's count as the store last told it, and the median of
 * those is shown, so no one pod decides it; for a budget each pod keeps, the
 * pods' own counts are added up. Reports of an earlier window are left out.
 */
import { SharedStateReason, type PolicySpec, type SidecarReport } from '../api/index.js';
import type { Condition, PolicyStatus } from '../api/policy-status.js';

type BudgetStatus = NonNullable<PolicyStatus['budgets']>[number];
type Budget = PolicySpec['budget'];

/** The most any count in a status may say (a report's figure beyond it is not a sidecar's). */
const MAX_COUNT = 1e15;

/** When the window that `now` is in ends: the next clock hour, or the next UTC midnight. */
export function windowEnd(window: Budget['window'], now: number): number {
  const d = new Date(now);
  return window === 'day' ? Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 1) : Math.floor(now / 3_600_000) * 3_600_000 + 3_600_000;
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length === 0 ? 0 : sorted[Math.floor((sorted.length - 1) / 2)]!;
};
const bounded = (n: number) => Math.min(Math.max(0, n), MAX_COUNT);
const money = (n: number) => String(Number(n.toFixed(6)));
/** 1234 → 1.2k, 2000000 → 2M. */
const compact = (n: number) => {
  for (const [unit, size] of [['T', 1e12], ['G', 1e9], ['M', 1e6], ['k', 1e3]] as const) if (n >= size) return `${Number((n / size).toFixed(1))}${unit}`;
  return String(Math.round(n));
};

const hasLimit = (b: Budget | undefined): b is Budget => !!b && (b.tokens > 0 || Number(b.cost) > 0);

/** Each budget the spec sets, with what the pods reported of it in the current window. */
export function budgetsStatus(spec: PolicySpec, reports: readonly (SidecarReport | undefined)[], now: number): BudgetStatus[] {
  const fleetByDefault = spec.sharedState !== undefined;
  const budgets: { scope: 'policy' | 'upstream'; upstream?: string; budget: Budget }[] = [];
  if (hasLimit(spec.budget)) budgets.push({ scope: 'policy', budget: spec.budget });
  for (const u of spec.upstreams) if (hasLimit(u.budget)) budgets.push({ scope: 'upstream', upstream: u.name, budget: u.budget });
  return budgets.map(({ scope, upstream, budget }) => {
    const end = windowEnd(budget.window, now);
    const keptFor = (budget.scope ?? (fleetByDefault ? 'fleet' : 'pod')) as 'fleet' | 'pod';
    const reported = reports.flatMap((r) => r?.budgets?.filter((b) => b.scope === scope && b.upstream === upstream && b.windowEndsAt === end) ?? []);
    const tokens = reported.map((b) => bounded(b.spent.tokens));
    const cost = reported.map((b) => bounded(b.spent.cost));
    const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);
    const spent = keptFor === 'fleet' ? { tokens: median(tokens), cost: median(cost) } : { tokens: sum(tokens), cost: sum(cost) };
    return {
      scope,
      ...(upstream === undefined ? {} : { upstream }),
      keptFor,
      windowEnd: new Date(end).toISOString(),
      tokens: { spent: Math.round(bounded(spent.tokens)), limit: budget.tokens },
      cost: { spent: money(bounded(spent.cost)), limit: budget.cost },
      pods: reported.length,
    };
  });
}

/** The SPEND column: the policy's fleet budget (else the first upstream's), its larger share of tokens and cost (no spaces: one cell). */
export function spendColumn(budgets: readonly BudgetStatus[]): string | undefined {
  const shown = budgets.find((b) => b.keptFor === 'fleet' && b.scope === 'policy') ?? budgets.find((b) => b.keptFor === 'fleet');
  if (!shown) return undefined;
  const tokenShare = shown.tokens.limit > 0 ? shown.tokens.spent / shown.tokens.limit : -1;
  const costShare = Number(shown.cost.limit) > 0 ? Number(shown.cost.spent) / Number(shown.cost.limit) : -1;
  return tokenShare >= costShare ? `tokens:${compact(shown.tokens.spent)}/${compact(shown.tokens.limit)}` : `cost:${shown.cost.spent}/${shown.cost.limit}`;
}

/** SharedStateAvailable, for a policy with spec.sharedState: from what each targeted pod last said of the store. */
export function sharedStateCondition(reports: readonly (SidecarReport | undefined)[]): Omit<Condition, 'type' | 'lastTransitionTime'> {
  const said = reports.flatMap((r) => (r?.sharedStore ? [r.sharedStore] : []));
  const away = said.filter((s) => s === 'unavailable').length;
  if (said.length === 0) return { status: 'Unknown', reason: SharedStateReason.NoReports, message: 'No targeted pod has reported on the shared store (spec.sharedState) yet.' };
  if (away > 0) {
    return {
      status: 'False',
      reason: SharedStateReason.StoreUnavailable,
      message: `${away} of ${said.length} pod(s) cannot reach the shared store (spec.sharedState): each spends a local share of the fleet's limits until it can, and its spending is added when the store answers.`,
    };
  }
  return { status: 'True', reason: SharedStateReason.StoreAvailable, message: `All ${said.length} reporting pod(s) reach the shared store.` };
}
