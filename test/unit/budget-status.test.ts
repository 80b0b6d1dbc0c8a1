import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConditionType, SharedStateReason, validatePolicy, validateReport, type BudgetReport, type PolicySpec, type SidecarReport } from '../../api/index.js';
import { budgetsStatus, spendColumn, windowEnd } from '../../controller/budget-status.js';
import { computeStatus, type PolicyFacts } from '../../controller/policy-status.js';

const NOW = Date.parse('2026-12-07T10:20:00Z');
const HOUR_END = Date.parse('2026-12-07T11:00:00Z');
const DAY_END = Date.parse('2026-12-08T00:00:00Z');

function spec(raw: unknown): PolicySpec {
  const verdict = validatePolicy(raw);
  assert.ok(verdict.ok, JSON.stringify(verdict));
  return verdict.spec;
}

const fleetSpec = spec({
  sharedState: { redis: { url: 'redis://redis.shop.svc:6379' } },
  budget: { window: 'hour', tokens: 2_000_000 },
  upstreams: [
    { name: 'openai', url: 'https://api.openai.com', budget: { window: 'day', tokens: 0, cost: '50', scope: 'pod' }, prices: [{ model: '*', input: '1', output: '2' }] },
    { name: 'local', url: 'http://vllm:8000' },
  ],
});

const policyBudget = (tokens: number, windowEndsAt = HOUR_END): BudgetReport => ({ scope: 'policy', fleet: true, windowEndsAt, limits: { tokens: 2_000_000, cost: 0 }, spent: { tokens, cost: 0 }, storeAvailable: true });
const podBudget = (cost: number): BudgetReport => ({ scope: 'upstream', upstream: 'openai', fleet: false, windowEndsAt: DAY_END, limits: { tokens: 0, cost: 50 }, spent: { tokens: 0, cost } });
const report = (budgets: BudgetReport[], sharedStore?: SidecarReport['sharedStore']): SidecarReport => ({ applied: null, breakers: {}, budgets, ...(sharedStore ? { sharedStore } : {}) });

describe('budgets in a policy\'s status', () => {
  it('ends windows at the next clock hour and the next UTC midnight, as the sidecars do', () => {
    assert.equal(windowEnd('hour', NOW), HOUR_END);
    assert.equal(windowEnd('day', NOW), DAY_END);
    assert.equal(windowEnd('hour', HOUR_END), HOUR_END + 3_600_000, 'a window that just rolled is the next one');
  });

  it('shows the fleet\'s spend as the median of the pods\' reports (one pod cannot decide it) and a pod budget\'s as the pods\' sum, with the spec\'s limits', () => {
    const reports = [report([policyBudget(1_200_000), podBudget(3)]), report([policyBudget(1_150_000), podBudget(4.5)]), report([policyBudget(999_999_999_999), podBudget(1)]), undefined];
    const budgets = budgetsStatus(fleetSpec, reports, NOW);
    assert.deepEqual(budgets, [
      { scope: 'policy', keptFor: 'fleet', windowEnd: '2026-12-07T11:00:00.000Z', tokens: { spent: 1_200_000, limit: 2_000_000 }, cost: { spent: '0', limit: '0' }, pods: 3 },
      { scope: 'upstream', upstream: 'openai', keptFor: 'pod', windowEnd: '2026-12-08T00:00:00.000Z', tokens: { spent: 0, limit: 0 }, cost: { spent: '8.5', limit: '50' }, pods: 3 },
    ]);
    assert.equal(spendColumn(budgets), 'tokens:1.2M/2M');
  });

  it('leaves out what a pod reported of an earlier window, and figures no sidecar could have', () => {
    const budgets = budgetsStatus(fleetSpec, [report([policyBudget(1_900_000, HOUR_END - 3_600_000)]), report([policyBudget(10)])], NOW);
    assert.deepEqual(budgets[0]!.tokens, { spent: 10, limit: 2_000_000 });
    assert.equal(budgets[0]!.pods, 1);
    const huge = budgetsStatus(fleetSpec, [report([{ ...podBudget(1e300) }])], NOW);
    assert.equal(huge[1]!.cost.spent, '1000000000000000');
  });

  it('shows the larger share of tokens and cost in the SPEND column, and none without a fleet budget', () => {
    const both = spec({ sharedState: { redis: { url: 'redis://r:6379' } }, budget: { tokens: 1000, cost: '10' }, upstreams: [{ name: 'a', url: 'http://a', prices: [{ model: '*', input: '1', output: '1' }] }] });
    const r = (tokens: number, cost: number) => report([{ scope: 'policy', fleet: true, windowEndsAt: HOUR_END, limits: { tokens: 1000, cost: 10 }, spent: { tokens, cost } }]);
    assert.equal(spendColumn(budgetsStatus(both, [r(900, 1)], NOW)), 'tokens:900/1k');
    assert.equal(spendColumn(budgetsStatus(both, [r(100, 9.5)], NOW)), 'cost:9.5/10');
    const perPod = spec({ budget: { tokens: 1000 }, upstreams: [{ name: 'a', url: 'http://a' }] });
    const budgets = budgetsStatus(perPod, [], NOW);
    assert.equal(budgets[0]!.keptFor, 'pod', 'without sharedState a budget is each pod\'s');
    assert.equal(spendColumn(budgets), undefined);
  });

  it('says whether the pods reach the shared store (SharedStateAvailable), only for a policy that names one', () => {
    const version = { source: 'controller' as const, policy: 'shop/chat', generation: 1, hash: 'h' };
    const facts: PolicyFacts = { generation: 1, version, conflicts: [], spec: fleetSpec, slo: fleetSpec.slo };
    const at = '2026-12-07T10:20:00Z';
    const condition = (pods: (SidecarReport | undefined)[]) => computeStatus(facts, pods.map((report, i) => ({ key: `p${i}`, report })), undefined, at).conditions!.find((c) => c.type === ConditionType.SharedStateAvailable);
    assert.equal(condition([undefined, report([])])!.reason, SharedStateReason.NoReports);
    assert.equal(condition([undefined, report([])])!.status, 'Unknown');
    const away = condition([report([], 'available'), report([], 'unavailable'), report([], 'available')])!;
    assert.equal(away.status, 'False');
    assert.equal(away.reason, SharedStateReason.StoreUnavailable);
    assert.match(away.message, /^1 of 3 pod\(s\) cannot reach the shared store/);
    assert.equal(condition([report([], 'available')])!.status, 'True');
    const status = computeStatus(facts, [{ key: 'p', report: report([policyBudget(5)], 'available') }], undefined, at);
    assert.equal(status.spend, 'tokens:5/2M');
    assert.equal(status.budgets?.length, 2);
    const without = computeStatus({ ...facts, spec: spec({ upstreams: [{ name: 'a', url: 'http://a' }] }) }, [{ key: 'p', report: report([], 'available') }], undefined, at);
    assert.equal(without.conditions!.find((c) => c.type === ConditionType.SharedStateAvailable), undefined);
    assert.equal(without.budgets, undefined);
    assert.equal(without.spend, undefined);
  });

  it('takes a report that names each budget once, and a sharedStore of available or unavailable (red team: one pod naming a budget 33 times weighed as 33 pods)', () => {
    const upstreams = new Set(['openai', 'local']);
    assert.equal(validateReport(report([policyBudget(5), podBudget(1)], 'available'), upstreams).ok, true);
    const twice = validateReport(report([policyBudget(5), policyBudget(1e15)]), upstreams);
    assert.equal(twice.ok, false);
    assert.match(!twice.ok ? twice.error : '', /each budget at most once/);
    assert.equal(validateReport({ ...report([]), sharedStore: 'maybe' as never }, upstreams).ok, false);
  });
});
