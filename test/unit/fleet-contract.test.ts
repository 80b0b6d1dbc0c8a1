/**
 * The contract of fleet-wide limits (issue 29): `scope` on budgets and rate
 * limits, `spec.sharedState`, `cache.shared`; policies written before them
 * still validate and mean what they meant (each pod's); the config stream's
 * pod count and the reports' budgets are read distrustfully; and what
 * reaches a Redis key from a policy's name is bounded.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { readSnapshot, validatePolicy, validateReport, type PolicySpec } from '../../api/index.js';
import { compileConfig } from '../../sidecar/config/compile-config.js';
import { counterKey, policyTag } from '../../sidecar/fleet/lease-script.js';

const version = { source: 'file' as const, policy: 'p', generation: 1, hash: 'h' };
const compile = (spec: object, pods?: number) => {
  const verdict = validatePolicy(spec);
  assert.ok(verdict.ok, verdict.ok ? '' : JSON.stringify(verdict.problems));
  return compileConfig(verdict.spec as PolicySpec, version, pods === undefined ? undefined : { selectedPods: pods });
};
const problems = (spec: object) => {
  const verdict = validatePolicy(spec);
  return verdict.ok ? [] : verdict.problems.map((p) => `${p.path}: ${p.message}`);
};
const upstream = { name: 'a', url: 'http://a', budget: { tokens: 1000 }, rateLimit: { requestsPerMinute: 60 } };
const store = { redis: { url: 'rediss://redis.shop.svc:6380', secretRef: { name: 'redis', key: 'password' } } };

describe('the fleet contract', () => {
  it('keeps a policy written before it each pod\'s, and makes limits the fleet\'s once the policy names a store', () => {
    const old = compile({ upstreams: [upstream], budget: { window: 'day', tokens: 5000 }, cache: { redis: { url: 'redis://cache:6379' } } });
    assert.equal(old.budget?.fleet, false, 'a shared answer cache alone does not make budgets the fleet\'s');
    assert.equal(old.upstreams.get('a')!.budget?.fleet, false);
    assert.equal(old.upstreams.get('a')!.rateLimit.fleet, false);
    assert.equal(old.sharedState, undefined);
    const fleet = compile({ upstreams: [upstream], budget: { tokens: 5000 }, sharedState: store }, 12);
    assert.equal(fleet.budget?.fleet, true);
    assert.equal(fleet.upstreams.get('a')!.rateLimit.fleet, true);
    assert.equal(fleet.sharedState?.url, 'rediss://redis.shop.svc:6380');
    assert.equal(fleet.selectedPods, 12);
    assert.equal(fleet.cache.redis, undefined, 'answers are not shared unless cache.shared says so');
    const mixed = compile({ upstreams: [{ ...upstream, budget: { tokens: 1000, scope: 'pod' } }], sharedState: store, cache: { shared: true } });
    assert.equal(mixed.upstreams.get('a')!.budget?.fleet, false);
    assert.equal(mixed.cache.redis?.url, 'rediss://redis.shop.svc:6380', 'cache.shared puts the answers in the store');
  });

  it('refuses fleet limits without a store and a cache named twice, naming the field', () => {
    assert.deepEqual(problems({ upstreams: [{ ...upstream, budget: { tokens: 1, scope: 'fleet' }, rateLimit: { requestsPerMinute: 1, scope: 'fleet' } }], budget: { tokens: 1, scope: 'fleet' }, cache: { shared: true } }), [
      'spec.budget.scope: fleet needs spec.sharedState (the store the fleet counts in)',
      'spec.upstreams[0].budget.scope: fleet needs spec.sharedState (the store the fleet counts in)',
      'spec.upstreams[0].rateLimit.scope: fleet needs spec.sharedState (the store the fleet counts in)',
      'spec.cache.shared: needs spec.sharedState (the Redis the answers are shared in)',
    ]);
    assert.deepEqual(problems({ upstreams: [upstream], sharedState: store, cache: { shared: true, redis: { url: 'redis://other:6379' } } }), ['spec.cache.shared: spec.cache.shared and spec.cache.redis.url name two Redis for one cache: set one of them']);
    assert.deepEqual(problems({ upstreams: [upstream], sharedState: { redis: { url: 'http://not-redis' } } }), ['spec.sharedState.redis.url: must be a redis:// or rediss:// URL']);
    assert.deepEqual(problems({ upstreams: [upstream], budget: { scope: 'everyone' } }), ['spec.budget.scope: must be one of: pod, fleet']);
  });

  it('reads the pod count of a snapshot as advice: a figure that is not one is dropped', () => {
    const snapshot = (selectedPods: unknown) => readSnapshot(JSON.stringify({ version, spec: {}, selectedPods }));
    for (const [given, read] of [[7, 7], [0, undefined], [-3, undefined], [1.5, undefined], ['9', undefined], [1e9, undefined]] as const) {
      const r = snapshot(given);
      assert.ok(r.ok);
      assert.equal(r.snapshot.selectedPods, read, String(given));
    }
  });

  it('takes budgets in a report only for the pod\'s own upstreams, bounded', () => {
    const budget = { scope: 'upstream', upstream: 'a', fleet: true, windowEndsAt: 1_767_229_200_000, limits: { tokens: 100_000, cost: 0 }, spent: { tokens: 99_414, cost: 0 }, storeAvailable: false };
    const ok = validateReport({ applied: null, breakers: {}, budgets: [budget, { ...budget, scope: 'policy', upstream: undefined, fleet: false, storeAvailable: undefined }] }, new Set(['a']));
    assert.ok(ok.ok);
    assert.deepEqual(ok.report.budgets?.[0], budget);
    for (const bad of [{ ...budget, upstream: 'z' }, { ...budget, spent: { tokens: -1, cost: 0 } }, { ...budget, fleet: 'yes' }, { ...budget, windowEndsAt: 1.5 }]) {
      assert.equal(validateReport({ applied: null, breakers: {}, budgets: [bad] }, new Set(['a'])).ok, false, JSON.stringify(bad));
    }
    assert.equal(validateReport({ applied: null, breakers: {}, budgets: Array.from({ length: 34 }, () => budget) }, new Set(['a'])).ok, false);
  });

  it('bounds what a policy\'s name puts in a Redis key, and keeps two long names apart', () => {
    assert.equal(policyTag('shop/chat'), '{shop/chat}');
    const long = `shop/${'x'.repeat(5000)}`;
    assert.ok(policyTag(long).length <= 128 + 16);
    assert.notEqual(policyTag(long), policyTag(`${long}y`));
    assert.match(policyTag('a b\r\n{c}*'), /^\{[A-Za-z0-9._/~-]+\}$/, 'one hash tag, of a name\'s characters only');
    assert.ok(counterKey(long, 'budget/upstream/a', 0).length < 200);
  });
});
