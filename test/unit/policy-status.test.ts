import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AcceptedReason, ConditionType, DegradedReason, EventReason, ProblemReason, ReadyReason, SecretReason, SloMetReason } from '../../api/index.js';
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
    assert.deepEqual(Object.values(ConditionType), ['Accepted', 'Ready', 'Degraded', 'SLOMet']);
    assert.deepEqual(Object.values(AcceptedReason), ['Valid', 'Conflicted', 'InvalidSpec', 'SecretNotFound', 'SecretNotAllowed', 'SecretValueUnusable']);
    assert.deepEqual(Object.values(ProblemReason), ['InvalidSpec', 'SecretNotFound', 'SecretNotAllowed', 'SecretValueUnusable']);
    assert.deepEqual(Object.values(ReadyReason), ['NotAccepted', 'ConfigRejected', 'NoTargetedPods', 'AllPodsSynced', 'PodsNotSynced']);
    assert.deepEqual(Object.values(DegradedReason), ['BreakersOpen', 'Healthy']);
    assert.deepEqual(Object.values(SloMetReason), ['NoTraffic', 'BelowObjective', 'WithinObjectives']);
    assert.deepEqual(Object.values(EventReason), ['BreakerOpened', 'ConfigRejected']);
  });
});
