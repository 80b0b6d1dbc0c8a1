/**
 * SLOs: the SLI window on a ManualClock (one-minute buckets, windows, burn
 * rates, stale slots), which finished requests count and how, the sidecar's
 * report of them, the controller's SLOMet condition combined over pods, and
 * reports that lie about their counts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { validatePolicy } from '../../api/validate-policy.js';
import { ConditionType, validateReport } from '../../api/index.js';
import { computeStatus, type PolicyFacts } from '../../controller/policy-status.js';
import type { Delivery } from '../../sidecar/proxy/inbound/write-outcome.js';
import { ManualClock } from '../../sidecar/resilience/clock.js';
import { SliWindow } from '../../sidecar/resilience/sli-window.js';
import { SloTracker, sliEvents } from '../../sidecar/slo-tracker.js';

const MINUTE = 60_000;
const ok = (firstByteAt = 100): Delivery => ({ status: 200, outcome: 'ok', failure: 'none', tier: 'primary', firstByteAt });

describe('an SLI window', () => {
  it('counts good and total per minute, over whole-minute windows, and forgets minutes older than its span', () => {
    const clock = new ManualClock();
    const w = new SliWindow(10 * MINUTE, clock);
    for (let i = 0; i < 9; i++) w.record(true);
    w.record(false);
    clock.advance(5 * MINUTE);
    w.record(false);
    assert.deepEqual(w.counts(MINUTE), { good: 0, total: 1 });
    assert.deepEqual(w.counts(10 * MINUTE), { good: 9, total: 11 });
    assert.ok(Math.abs(w.burnRate(10 * MINUTE, 0.9) - 2 / 11 / 0.1) < 1e-9, "error rate over the budget");
    clock.advance(10 * MINUTE);
    assert.deepEqual(w.counts(10 * MINUTE), { good: 0, total: 0 }, 'all stale');
    assert.equal(w.burnRate(5 * MINUTE, 0.999), 0, 'no events, no burn');
    w.record(true);
    assert.deepEqual(w.counts(60 * MINUTE), { good: 1, total: 1 }, 'a window longer than the span reads the span');
  });

  it('agrees with a plain list of events, whatever their times (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.record({ advance: fc.integer({ min: 0, max: 3 * MINUTE }), good: fc.boolean() }), { maxLength: 200 }), fc.integer({ min: 1, max: 30 }), (events, minutes) => {
        const clock = new ManualClock();
        const w = new SliWindow(30 * MINUTE, clock);
        const seen: { minute: number; good: boolean }[] = [];
        for (const e of events) {
          clock.advance(e.advance);
          w.record(e.good);
          seen.push({ minute: Math.floor(clock.now() / MINUTE), good: e.good });
        }
        const now = Math.floor(clock.now() / MINUTE);
        const inWindow = seen.filter((s) => s.minute > now - minutes);
        assert.deepEqual(w.counts(minutes * MINUTE), { good: inWindow.filter((s) => s.good).length, total: inWindow.length });
      }),
      { numRuns: 200 },
    );
  });
});

describe('which requests count towards the SLOs', () => {
  it('counts answers (by any tier but the static one) as available, failures as not, and leaves out what the app or the policy refused and cancellations', () => {
    assert.deepEqual(sliEvents(ok(), false, 0, 2000), { availability: true });
    assert.deepEqual(sliEvents({ ...ok(), tier: 'cache' }, false, 0, 2000), { availability: true });
    assert.deepEqual(sliEvents({ ...ok(), outcome: 'degraded' }, false, 0, 2000), { availability: false });
    assert.deepEqual(sliEvents({ status: 502, outcome: 'upstream_error', failure: 'server-error', tier: 'primary' }, false, 0, 2000), { availability: false });
    assert.deepEqual(sliEvents({ status: 503, outcome: 'local_error', failure: 'unavailable', tier: 'primary' }, true, 0, 2000), { availability: false });
    for (const failure of ['client-error', 'context-length', 'content-filter', 'budget-exhausted'] as const) {
      assert.deepEqual(sliEvents({ status: 400, outcome: 'upstream_error', failure, tier: 'primary' }, false, 0, 2000), {}, failure);
    }
    assert.deepEqual(sliEvents({ ...ok(), outcome: 'cancelled' }, true, 0, 2000), {});
  });

  it('times the first token of a streamed answer against the threshold', () => {
    assert.deepEqual(sliEvents(ok(2000), true, 0, 2000), { availability: true, timeToFirstToken: true });
    assert.deepEqual(sliEvents(ok(2500), true, 400, 2000), { availability: true, timeToFirstToken: false });
    assert.deepEqual(sliEvents({ status: 200, outcome: 'upstream_error', failure: 'reset', tier: 'primary', firstByteAt: 10 }, true, 0, 2000), { availability: false }, 'a stream that broke is not timed');
  });

  it('tracks only the SLIs with an objective, and reports whether each is met', () => {
    const clock = new ManualClock();
    const tracker = new SloTracker({ windowMs: 60 * MINUTE, availability: 0.9, timeToFirstToken: { thresholdMs: 1000, objective: 0 } }, 'shop/chat', clock);
    assert.deepEqual(tracker.report(), { counts: { availability: { good: 0, total: 0 } }, verdict: 'availability:none' });
    for (let i = 0; i < 9; i++) tracker.record(ok(5000), true, 0);
    assert.deepEqual(tracker.record({ ...ok(), outcome: 'degraded' }, true, 0), [['availability', false]]);
    assert.equal(tracker.report().verdict, 'availability:met', '9 of 10 meets 90%');
    tracker.record({ ...ok(), outcome: 'degraded' }, true, 0);
    assert.deepEqual(tracker.report(), { counts: { availability: { good: 9, total: 11 } }, verdict: 'availability:missed' });
  });

  it('are checked by the policy: objectives below 100, a window of 1m to 24h', () => {
    const at = (slo: object) => {
      const v = validatePolicy({ upstreams: [{ name: 'a', url: 'http://x' }], slo });
      return v.ok ? [] : v.problems.map((p) => `${p.path}: ${p.message}`);
    };
    assert.deepEqual(at({ availability: { objective: '100' } }), ['spec.slo.availability.objective: must be a percentage such as 99 or 99.9']);
    assert.deepEqual(at({ window: '2d' }), ['spec.slo.window: must be a duration such as 250ms, 30s, 5m or 1h']);
    assert.deepEqual(at({ window: '25h' }), ['spec.slo.window: must be between 1m and 24h']);
    assert.deepEqual(at({ window: '30m', availability: { objective: '99.95' }, timeToFirstToken: { threshold: '800ms', objective: '95' } }), []);
  });
});

const version = { source: 'controller' as const, policy: 'shop/chat', generation: 1, hash: 'h' };
const spec = (availability: string, ttft = '0') => validatePolicy({ upstreams: [{ name: 'a', url: 'http://x' }], slo: { window: '1h', availability: { objective: availability }, timeToFirstToken: { objective: ttft } } });
const factsWith = (availability: string, ttft = '0'): PolicyFacts => {
  const v = spec(availability, ttft);
  assert.ok(v.ok);
  return { generation: 1, version, conflicts: [], slo: v.spec.slo };
};
const podWith = (key: string, slo?: object) => ({ key, report: { applied: version, breakers: {}, slo } });
const sloMet = (s: ReturnType<typeof computeStatus>) => s.conditions?.find((c) => c.type === ConditionType.SLOMet);

describe('the SLOMet condition', () => {
  it('sums the SLIs over the targeted pods: Unknown without events, True when every objective is met, False naming the one that is not', () => {
    const facts = factsWith('99.9', '95');
    const none = computeStatus(facts, [podWith('a'), podWith('b')], undefined, 't1');
    assert.deepEqual([sloMet(none)?.status, sloMet(none)?.reason], ['Unknown', 'NoTraffic']);
    const good = computeStatus(facts, [podWith('a', { availability: { good: 999, total: 1000 } }), podWith('b', { availability: { good: 1000, total: 1000 }, timeToFirstToken: { good: 95, total: 100 } })], none, 't2');
    assert.deepEqual([sloMet(good)?.status, sloMet(good)?.reason], ['True', 'WithinObjectives']);
    assert.deepEqual(good.slo, { window: '1h', slis: [{ name: 'availability', objective: '99.9', actual: '99.950', good: 1999, total: 2000 }, { name: 'timeToFirstToken', objective: '95', actual: '95.000', good: 95, total: 100 }] });
    const bad = computeStatus(facts, [podWith('a', { availability: { good: 1995, total: 2000 }, timeToFirstToken: { good: 95, total: 100 } })], good, 't3');
    assert.deepEqual([sloMet(bad)?.status, sloMet(bad)?.reason, sloMet(bad)?.lastTransitionTime], ['False', 'BelowObjective', 't3']);
    assert.equal(sloMet(bad)?.message, 'Over the last 1h: availability 99.750% (1995 of 2000) against 99.9%.');
    assert.deepEqual(computeStatus(facts, [], undefined, 't').conditions?.map((c) => c.type), ['Accepted', 'Ready', 'Degraded', 'SLOMet']);
  });

  it('never reads 99.9996% as 100.000%, and goes away with the spec\'s SLOs', () => {
    const near = computeStatus(factsWith('99.9'), [podWith('a', { availability: { good: 999_996, total: 1_000_000 } })], undefined, 't');
    assert.equal(near.slo?.slis[0]?.actual, '99.999');
    const without = computeStatus({ generation: 1, version, conflicts: [] }, [], near, 't2');
    assert.equal(sloMet(without), undefined);
    assert.equal(without.slo, undefined);
  });
});

describe('the SLOMet condition, when one pod lies about its counts', () => {
  // Two honest pods at 99.0% against 99.9%: the policy misses its SLO, whatever a third pod says.
  const honest = [podWith('b', { availability: { good: 990, total: 1000 } }), podWith('c', { availability: { good: 990, total: 1000 } })];

  it('leaves out counts over what a pod can have served in the window', () => {
    const status = computeStatus(factsWith('99.9'), [podWith('a', { availability: { good: 400_000_000, total: 400_000_000 } }), ...honest], undefined, 't');
    assert.deepEqual([sloMet(status)?.status, sloMet(status)?.reason], ['False', 'BelowObjective']);
    assert.deepEqual(status.slo?.slis[0], { name: 'availability', objective: '99.9', actual: '99.000', good: 1980, total: 2000 });
  });

  it('weighs a pod at most as much as all the others together, so it cannot outweigh them', () => {
    const status = computeStatus(factsWith('99.9'), [podWith('a', { availability: { good: 10_000_000, total: 10_000_000 } }), ...honest], undefined, 't');
    assert.deepEqual([sloMet(status)?.status, sloMet(status)?.reason], ['False', 'BelowObjective']);
    assert.deepEqual(status.slo?.slis[0], { name: 'availability', objective: '99.9', actual: '99.500', good: 3980, total: 4000 }, 'the liar counts as 2,000 events');
  });

  it('keeps a pod\'s ratio when it is scaled down, counts honest replicas of about the same traffic as they are, and takes a pod alone with events as it is', () => {
    const busy = computeStatus(factsWith('99'), [podWith('a', { availability: { good: 9_950, total: 10_000 } }), podWith('b', { availability: { good: 1_000, total: 1_000 } })], undefined, 't');
    assert.deepEqual(busy.slo?.slis[0], { name: 'availability', objective: '99', actual: '99.750', good: 1995, total: 2000 }, 'a: 995 of 1,000');
    const even = computeStatus(factsWith('99'), [podWith('a', { availability: { good: 1000, total: 1000 } }), podWith('b', { availability: { good: 990, total: 1000 } }), podWith('c', { availability: { good: 1100, total: 1100 } })], undefined, 't');
    assert.deepEqual([even.slo?.slis[0]?.good, even.slo?.slis[0]?.total], [3090, 3100]);
    const alone = computeStatus(factsWith('99'), [podWith('a', { availability: { good: 98, total: 100 } }), podWith('b', { availability: { good: 0, total: 0 } })], undefined, 't');
    assert.deepEqual([alone.slo?.slis[0]?.good, alone.slo?.slis[0]?.total, sloMet(alone)?.status], [98, 100, 'False']);
  });
});

describe('SLI counts in a sidecar\'s report', () => {
  it('are taken when well-formed and within what a pod can serve in the longest window (a day at 10,000 a second), and refuse the report when not', () => {
    const base = { applied: null, breakers: {} };
    const r = validateReport({ ...base, slo: { availability: { good: 5, total: 6 } } }, new Set());
    assert.ok(r.ok);
    assert.deepEqual(r.report.slo, { availability: { good: 5, total: 6 } });
    assert.ok(validateReport({ ...base, slo: { availability: { good: 800_000_000, total: 800_000_000 } } }, new Set()).ok, '10,000 events a second for a day');
    for (const slo of [{ availability: { good: 7, total: 6 } }, { latency: { good: 1, total: 1 } }, { availability: { good: -1, total: 1 } }, { availability: { good: 1.5, total: 2 } }, { availability: { good: 1, total: 2e12 } }, { availability: { good: 1e12, total: 1e12 } }, { availability: { good: 0, total: 900_000_000 } }, [], 'x', { availability: null }]) {
      const refused = validateReport({ ...base, slo }, new Set());
      assert.ok(!refused.ok && /^slo:/.test(refused.error), JSON.stringify(slo));
    }
  });
});
