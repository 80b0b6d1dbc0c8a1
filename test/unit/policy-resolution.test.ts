import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { selectorMatches } from '../../controller/label-selector.js';
import { resolvePod, type PodRef, type PolicyRef } from '../../controller/policy-resolution.js';

const pod = (labels: Record<string, string>, annotations: Record<string, string> = {}, namespace = 'team-a'): PodRef => ({ namespace, name: 'p', labels, annotations });
const policy = (name: string, createdAt: string, podSelector?: PolicyRef['podSelector'], namespace = 'team-a'): PolicyRef => ({ namespace, name, createdAt, podSelector });

describe('label selectors', () => {
  it('follows Kubernetes semantics', () => {
    assert.ok(selectorMatches({}, { a: '1' }), 'empty selects all');
    assert.ok(selectorMatches({ matchLabels: { app: 'chat' } }, { app: 'chat', x: 'y' }));
    assert.ok(!selectorMatches({ matchLabels: { app: 'chat' } }, { app: 'other' }));
    assert.ok(selectorMatches({ matchExpressions: [{ key: 'tier', operator: 'In', values: ['a', 'b'] }] }, { tier: 'b' }));
    assert.ok(!selectorMatches({ matchExpressions: [{ key: 'tier', operator: 'In', values: ['a'] }] }, {}));
    assert.ok(selectorMatches({ matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['a'] }] }, {}));
    assert.ok(selectorMatches({ matchExpressions: [{ key: 'gpu', operator: 'Exists' }] }, { gpu: '' }));
    assert.ok(!selectorMatches({ matchExpressions: [{ key: 'gpu', operator: 'DoesNotExist' }] }, { gpu: 'x' }));
  });
});

describe('pod → policy resolution', () => {
  const policies = [policy('new', '2026-02-01T00:00:00Z', { matchLabels: { app: 'chat' } }), policy('old', '2026-01-01T00:00:00Z', { matchLabels: { app: 'chat' } }), policy('pinned-only', '2025-01-01T00:00:00Z')];

  it('gives the oldest matching policy and reports the others as conflicts', () => {
    assert.deepEqual(resolvePod(pod({ app: 'chat' }), policies), { policy: 'team-a/old', conflicts: ['team-a/new'] });
  });

  it('honours the annotation pin, even for a policy without a podSelector', () => {
    assert.deepEqual(resolvePod(pod({ app: 'chat' }, { 'breakwater.dev/policy': 'pinned-only' }), policies), { policy: 'team-a/pinned-only', conflicts: [] });
    assert.deepEqual(resolvePod(pod({}, { 'breakwater.dev/policy': 'gone' }), policies), { conflicts: [], missingPin: 'team-a/gone' });
  });

  it('never crosses namespaces', () => {
    assert.deepEqual(resolvePod(pod({ app: 'chat' }, {}, 'team-b'), policies), { conflicts: [] });
  });

  it('gives the same answer whatever order the policies arrive in (property)', () => {
    fc.assert(
      fc.property(fc.shuffledSubarray(policies, { minLength: 0 }), (subset) => {
        const shuffled = [...subset].reverse();
        assert.deepEqual(resolvePod(pod({ app: 'chat' }), subset), resolvePod(pod({ app: 'chat' }), shuffled));
      }),
    );
  });
});
