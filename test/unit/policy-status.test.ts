import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AcceptedReason, ConditionType, DegradedReason, EventReason, ProblemReason, ReadyReason, SecretReason, SharedStateReason, SloMetReason } from '../../api/index.js';
import { computeStatus, type PolicyFacts } from '../../controller/policy-status.js';

const version = { source: 'controller' as const, policy: 'team-a/chat', generation: 2, hash: 'h2' };
const facts: PolicyFacts = { generation: 2, version, conflicts: [] };
const closed = { closed: 1, halfOpen: 0, open: 0 };
const condition = (s: ReturnType<typeof computeStatus>, type: ConditionType) => s.conditions!.find((c) => c.type === type)!;

describe('policy status', () => {
  it('counts targeted, synced and pods with an open breaker, and sets the conditions', () => {
    const s = computeStatus(
      facts,
      [
        { key: 'a', report: { applied: version, breakers: { primary: closed } } },
        { key: 'b', report: { applied: { ...version, generation: 1, hash: 'h1' }, breakers: { primary: { closed: 0, halfOpen: 0, open: 1 } } } },
        { key: 'c' },
      ],
      undefined,
      '2026-11-23T10:00:00Z',
    );
    assert.deepEqual(s.pods, { targeted: 3, synced: 1, withOpenBreaker: 1 });
    assert.equal(s.observedGeneration, 2);
    assert.deepEqual(s.upstreams, [{ name: 'primary', breakers: { closed: 1, halfOpen: 0, open: 1 }, lastTransitionTime: '2026-11-23T10:00:00Z' }]);
    assert.equal(condition(s, ConditionType.Accepted).status, 'True');
    assert.equal(condition(s, ConditionType.Ready).reason, 'PodsNotSynced');
    assert.equal(condition(s, ConditionType.Degraded).status, 'True');
    assert.deepEqual(s.conditions!.map((c) => c.type), ['Accepted', 'Ready', 'Degraded']);
  });

  it('moves lastTransitionTime only when a condition\'s status changes', () => {
    const first = computeStatus(facts, [{ key: 'a' }], undefined, 't1');
    const same = computeStatus(facts, [{ key: 'a' }], first, 't2');
    assert.equal(condition(same, ConditionType.Ready).lastTransitionTime, 't1');
    const synced = computeStatus(facts, [{ key: 'a', report: { applied: version, breakers: {} } }], same, 't3');
    assert.equal(condition(synced, ConditionType.Ready).status, 'True');
    assert.equal(condition(synced, ConditionType.Ready).lastTransitionTime, 't3');
    assert.equal(condition(synced, ConditionType.Accepted).lastTransitionTime, 't1');
  });

  it('reports a spec problem, conflicts and rejected config truthfully', () => {
    const bad = computeStatus({ ...facts, problem: { reason: SecretReason.SecretNotFound, message: 'secret openai-key not found' } }, [], undefined, 't');
    assert.equal(condition(bad, ConditionType.Ready).status, 'False', 'a policy that is not accepted is never Ready (issue 26), with no pods as with pods');
    assert.equal(condition(bad, ConditionType.Ready).reason, 'NotAccepted');
    assert.equal(condition(computeStatus({ ...facts, problem: { reason: SecretReason.SecretNotFound, message: 'x' } }, [{ key: 'a', report: { applied: version, breakers: {} } }], undefined, 't'), ConditionType.Ready).status, 'False');
    assert.equal(bad.observedAt, 't', 'observedAt says when it was computed');
    assert.equal(condition(bad, ConditionType.Accepted).status, 'False');
    assert.equal(condition(bad, ConditionType.Accepted).reason, 'SecretNotFound');
    const conflicted = computeStatus({ ...facts, conflicts: [{ pod: 'team-a/p', winner: 'team-a/old' }] }, [], undefined, 't');
    assert.equal(condition(conflicted, ConditionType.Accepted).reason, 'Conflicted');
    const rejected = computeStatus(facts, [{ key: 'a', report: { applied: null, rejected: { version, error: 'bad' }, breakers: {} } }], undefined, 't');
    assert.equal(condition(rejected, ConditionType.Ready).reason, 'ConfigRejected');
  });
});

describe('condition types and reasons', () => {
  it('keep the values of the contract, which kubectl, alerts and tools match', () => {
    assert.deepEqual(Object.values(ConditionType), ['Accepted', 'Ready', 'Degraded', 'SLOMet', 'SharedStateAvailable']);
    assert.deepEqual(Object.values(AcceptedReason), ['Valid', 'Conflicted', 'InvalidSpec', 'SecretNotFound', 'SecretNotAllowed', 'SecretValueUnusable']);
    assert.deepEqual(Object.values(ProblemReason), ['InvalidSpec', 'SecretNotFound', 'SecretNotAllowed', 'SecretValueUnusable']);
    assert.deepEqual(Object.values(ReadyReason), ['NotAccepted', 'ConfigRejected', 'NoTargetedPods', 'AllPodsSynced', 'PodsNotSynced']);
    assert.deepEqual(Object.values(DegradedReason), ['BreakersOpen', 'Healthy']);
    assert.deepEqual(Object.values(SloMetReason), ['NoTraffic', 'BelowObjective', 'WithinObjectives']);
    assert.deepEqual(Object.values(SharedStateReason), ['StoreAvailable', 'StoreUnavailable', 'NoReports']);
    assert.deepEqual(Object.values(EventReason), ['BreakerOpened', 'ConfigRejected']);
  });
});

describe('concurrency limits in the status (kubectl describe)', () => {
  const limitOf = (limit: number, extra: object = {}) => ({ upstream: 'openai', mode: 'adaptive' as const, limit, min: 4, max: 1024, ...extra });
  const pod = (key: string, concurrency: ReturnType<typeof limitOf>[]) => ({ key, report: { applied: version, breakers: { openai: closed }, concurrency } });

  it('shows each upstream\'s mode, bounds and the lowest, median and highest limit across pods', () => {
    const s = computeStatus(facts, [pod('a', [limitOf(40)]), pod('b', [limitOf(12)]), pod('c', [limitOf(200)]), { key: 'd' }], undefined, 't');
    assert.deepEqual(s.upstreams, [{ name: 'openai', breakers: { closed: 3, halfOpen: 0, open: 0 }, lastTransitionTime: 't', concurrency: { mode: 'adaptive', min: 4, max: 1024, limits: { lowest: 12, median: 40, highest: 200 }, pods: 3 } }]);
  });

  it('takes the mode and bounds most pods report, and leaves the field out when no pod reports a limit', () => {
    const s = computeStatus(facts, [pod('a', [limitOf(32, { mode: 'fixed', min: 32, max: 32 })]), pod('b', [limitOf(10)]), pod('c', [limitOf(20)])], undefined, 't');
    assert.deepEqual(s.upstreams![0]!.concurrency, { mode: 'adaptive', min: 4, max: 1024, limits: { lowest: 10, median: 20, highest: 32 }, pods: 3 });
    const even = computeStatus(facts, [pod('a', [limitOf(10)]), pod('b', [limitOf(21)])], undefined, 't');
    assert.equal(even.upstreams![0]!.concurrency!.limits.median, 16, 'the mean of the two middle ones, rounded');
    const none = computeStatus(facts, [{ key: 'a', report: { applied: version, breakers: { openai: closed } } }], undefined, 't');
    assert.equal(none.upstreams![0]!.concurrency, undefined);
  });

  it('a limit that moves does not move the upstream\'s lastTransitionTime (breakers only)', () => {
    const first = computeStatus(facts, [pod('a', [limitOf(40)])], undefined, 't1');
    const next = computeStatus(facts, [pod('a', [limitOf(60)])], first, 't2');
    assert.equal(next.upstreams![0]!.lastTransitionTime, 't1');
    assert.equal(next.upstreams![0]!.concurrency!.limits.highest, 60);
  });
});
