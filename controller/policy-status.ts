/**
 * The status of a policy, computed from what the controller knows: the pods it
 * targets, what each pod's sidecar last reported, and whether the spec and its
 * references are sound. Pure and level-based; conditions keep their
 * lastTransitionTime while their status does not change.
 */
import {
  AcceptedReason,
  ConditionType,
  DegradedReason,
  maxSliEvents,
  parseDuration,
  ReadyReason,
  SloMetReason,
  type ConfigVersion,
  type PolicySpec,
  type ProblemReason,
  type SidecarReport,
  type SliCounts,
} from '../api/index.js';
import type { Condition, PolicyStatus } from '../api/policy-status.js';
import { budgetsStatus, sharedStateCondition, spendColumn } from './budget-status.js';
import { concurrencyStatus } from './concurrency-status.js';

export interface PolicyFacts {
  generation: number;
  version: ConfigVersion;
  /** Why the spec cannot be used (invalid, or a Secret it names is missing); undefined when sound. */
  problem?: { reason: ProblemReason; message: string };
  /** Pods that this policy selects but that use an older policy. */
  conflicts: { pod: string; winner: string }[];
  /** The spec's SLOs, when the spec is valid. */
  slo?: PolicySpec['slo'];
  /** The spec, when it is valid (its budgets and shared store: budget-status.ts). */
  spec?: PolicySpec;
}

type SliStatus = NonNullable<PolicyStatus['slo']>['slis'][number];

const SLI_NAMES = { availability: 'availability', timeToFirstToken: 'time to first token' } as const;

/**
 * One SLI of the policy from its pods' counts. Each pod's counts come from the
 * pod itself, which its owner controls, so no one pod may decide the result:
 * - counts over what a pod can have served in the window (`ceiling`, see
 *   maxSliEvents) are not a sidecar's, and are left out;
 * - a pod weighs at most as much as all the other pods together: a larger
 *   total is scaled down to theirs, good with it, so its ratio is kept. However
 *   large the counts it claims, a pod then moves the SLI at most halfway from
 *   the others' towards its own. Replicas behind one Service serve about the
 *   same share and are hardly scaled; a pod that really served more than all
 *   the others together is weighed as much as they are;
 * - a pod alone with events is taken as it is: there is nothing to weigh it
 *   against, and its ratio is the SLI whatever its weight.
 */
export function policySli(pods: readonly SliCounts[], ceiling: number): SliCounts {
  const counted = pods.filter((c) => c.total > 0 && c.total <= ceiling);
  const all = counted.reduce((sum, c) => sum + c.total, 0);
  let good = 0;
  let total = 0;
  for (const c of counted) {
    const others = all - c.total;
    if (others === 0 || c.total <= others) {
      good += c.good;
      total += c.total;
    } else {
      good += Math.round((c.good * others) / c.total);
      total += others;
    }
  }
  return { good, total };
}

/** Each SLI the spec gives an objective, over the pods' reports (policySli). */
function sloStatus(slo: PolicySpec['slo'], pods: TargetedPod[]): PolicyStatus['slo'] {
  const objectives = { availability: slo.availability.objective, timeToFirstToken: slo.timeToFirstToken.objective };
  const ceiling = maxSliEvents(parseDuration(slo.window));
  const slis: SliStatus[] = [];
  for (const name of ['availability', 'timeToFirstToken'] as const) {
    if (!(Number(objectives[name]) > 0)) continue;
    const { good, total } = policySli(pods.flatMap((pod) => pod.report?.slo?.[name] ?? []), ceiling);
    // Cut, not rounded, so 99.9996% never reads as 100.000%.
    const actual = total === 0 ? '' : (Math.floor((good / total) * 100_000) / 1000).toFixed(3);
    slis.push({ name, objective: objectives[name], actual, good, total });
  }
  return slis.length === 0 ? undefined : { window: slo.window, slis };
}

/** SLOMet: True when every SLI with events meets its objective, False when one does not, Unknown without events. */
function sloCondition(slo: NonNullable<PolicyStatus['slo']>): Omit<Condition, 'type' | 'lastTransitionTime'> {
  const counted = slo.slis.filter((s) => s.total > 0);
  const describe = (s: SliStatus) => `${SLI_NAMES[s.name]} ${s.actual}% (${s.good} of ${s.total}) against ${s.objective}%`;
  if (counted.length === 0) return { status: 'Unknown', reason: SloMetReason.NoTraffic, message: `No request counted towards the SLOs in the last ${slo.window}.` };
  const missed = counted.filter((s) => s.good < (Number(s.objective) / 100) * s.total);
  if (missed.length > 0) return { status: 'False', reason: SloMetReason.BelowObjective, message: `Over the last ${slo.window}: ${missed.map(describe).join('; ')}.` };
  return { status: 'True', reason: SloMetReason.WithinObjectives, message: `Over the last ${slo.window}: ${counted.map(describe).join('; ')}.` };
}

export interface TargetedPod {
  key: string;
  report?: SidecarReport;
}

export const sameVersion = (a: ConfigVersion | null | undefined, b: ConfigVersion) =>
  !!a && a.policy === b.policy && a.generation === b.generation && a.hash === b.hash;

/** Sets a condition, keeping lastTransitionTime when its status is unchanged (meta.SetStatusCondition). */
export function setCondition(conditions: Condition[], next: Omit<Condition, 'lastTransitionTime'>, now: string): Condition[] {
  const previous = conditions.find((c) => c.type === next.type);
  const lastTransitionTime = previous && previous.status === next.status ? previous.lastTransitionTime : now;
  return [...conditions.filter((c) => c.type !== next.type), { ...next, lastTransitionTime }];
}

export function computeStatus(facts: PolicyFacts, pods: TargetedPod[], previous: PolicyStatus | undefined, now: string): PolicyStatus {
  const synced = pods.filter((p) => sameVersion(p.report?.applied, facts.version));
  const upstreams = new Map<string, { closed: number; halfOpen: number; open: number }>();
  let withOpenBreaker = 0;
  for (const pod of pods) {
    let open = false;
    for (const [name, counts] of Object.entries(pod.report?.breakers ?? {})) {
      const sum = upstreams.get(name) ?? { closed: 0, halfOpen: 0, open: 0 };
      sum.closed += counts.closed;
      sum.halfOpen += counts.halfOpen;
      sum.open += counts.open;
      upstreams.set(name, sum);
      if (counts.open > 0) open = true;
    }
    if (open) withOpenBreaker++;
  }
  const rejected = pods.filter((p) => p.report?.rejected && sameVersion(p.report.rejected.version, facts.version));
  const generation = facts.generation;
  let conditions = previous?.conditions ?? [];
  const accepted = facts.problem
    ? { status: 'False' as const, ...facts.problem }
    : facts.conflicts.length > 0
      ? { status: 'True' as const, reason: AcceptedReason.Conflicted, message: `${facts.conflicts.length} selected pod(s) use an older policy: ${facts.conflicts.slice(0, 5).map((c) => `${c.pod} → ${c.winner}`).join(', ')}` }
      : { status: 'True' as const, reason: AcceptedReason.Valid, message: 'The spec is valid and its references resolve.' };
  conditions = setCondition(conditions, { type: ConditionType.Accepted, observedGeneration: generation, ...accepted }, now);
  const ready = facts.problem
    ? { status: 'False' as const, reason: ReadyReason.NotAccepted, message: `The policy is not accepted (${facts.problem.reason}): ${facts.problem.message}` }
    : rejected.length > 0
      ? { status: 'False' as const, reason: ReadyReason.ConfigRejected, message: `${rejected.length} sidecar(s) rejected generation ${generation}: ${rejected[0]!.report!.rejected!.error}` }
      : pods.length === 0
        ? { status: 'True' as const, reason: ReadyReason.NoTargetedPods, message: 'No injected pod uses this policy.' }
        : synced.length === pods.length
          ? { status: 'True' as const, reason: ReadyReason.AllPodsSynced, message: `All ${pods.length} pod(s) run generation ${generation}.` }
          : { status: 'False' as const, reason: ReadyReason.PodsNotSynced, message: `${pods.length - synced.length} of ${pods.length} pod(s) have not acknowledged generation ${generation}.` };
  conditions = setCondition(conditions, { type: ConditionType.Ready, observedGeneration: generation, ...ready }, now);
  const degraded =
    withOpenBreaker > 0
      ? { status: 'True' as const, reason: DegradedReason.BreakersOpen, message: `${withOpenBreaker} pod(s) have an open circuit breaker.` }
      : { status: 'False' as const, reason: DegradedReason.Healthy, message: 'No open circuit breakers.' };
  conditions = setCondition(conditions, { type: ConditionType.Degraded, observedGeneration: generation, ...degraded }, now);
  const slo = facts.slo && sloStatus(facts.slo, pods);
  if (slo) conditions = setCondition(conditions, { type: ConditionType.SLOMet, observedGeneration: generation, ...sloCondition(slo) }, now);
  else conditions = conditions.filter((c) => c.type !== ConditionType.SLOMet);
  const reports = pods.map((p) => p.report);
  if (facts.spec?.sharedState) conditions = setCondition(conditions, { type: ConditionType.SharedStateAvailable, observedGeneration: generation, ...sharedStateCondition(reports) }, now);
  else conditions = conditions.filter((c) => c.type !== ConditionType.SharedStateAvailable);
  const budgets = facts.spec ? budgetsStatus(facts.spec, reports, Date.parse(now)) : [];
  const concurrency = concurrencyStatus(reports);
  for (const name of concurrency.keys()) if (!upstreams.has(name)) upstreams.set(name, { closed: 0, halfOpen: 0, open: 0 });
  const spend = spendColumn(budgets);
  const order: readonly string[] = Object.values(ConditionType);
  conditions.sort((a, b) => order.indexOf(a.type) - order.indexOf(b.type));
  return {
    observedGeneration: generation,
    observedAt: now,
    conditions,
    pods: { targeted: pods.length, synced: synced.length, withOpenBreaker },
    upstreams: [...upstreams].sort(([a], [b]) => a.localeCompare(b)).map(([name, breakers]) => {
      const before = previous?.upstreams?.find((u) => u.name === name);
      const changed = !before || JSON.stringify(before.breakers) !== JSON.stringify(breakers);
      const lastTransitionTime = changed ? now : before.lastTransitionTime;
      const limit = concurrency.get(name);
      return { name, breakers, ...(lastTransitionTime ? { lastTransitionTime } : {}), ...(limit ? { concurrency: limit } : {}) };
    }),
    ...(slo ? { slo } : {}),
    ...(budgets.length > 0 ? { budgets } : {}),
    ...(spend ? { spend } : {}),
  };
}
