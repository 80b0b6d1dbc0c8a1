import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { CircuitBreaker, type BreakerSettings, type BreakerStateName } from '../../sidecar/resilience/circuit-breaker.js';
import { UpstreamState } from '../../sidecar/proxy/upstream/upstream-state.js';
import { ManualClock } from '../../sidecar/resilience/clock.js';
import { compile, metrics } from '../support/layer-kit.js';

const settings = (over: Partial<BreakerSettings> = {}): BreakerSettings => ({
  consecutiveFailures: 3,
  failureRate: { thresholdPercent: 0, minRequests: 10, windowMs: 10_000 },
  slowCall: { thresholdPercent: 0, durationMs: 1000 },
  openForMs: 1000,
  maxOpenForMs: 5000,
  halfOpen: { maxProbes: 1, successesToClose: 2 },
  ...over,
});

function breaker(over: Partial<BreakerSettings> = {}) {
  const clock = new ManualClock();
  const transitions: string[] = [];
  const b = new CircuitBreaker(settings(over), clock, (from, to) => transitions.push(`${from}->${to}`));
  const call = (failure: boolean, durationMs = 10) => {
    const a = b.tryAcquire();
    assert.ok(a.ok, 'expected the breaker to admit the call');
    b.record(a.permit, { failure, durationMs });
  };
  return { b, clock, transitions, call };
}

describe('circuit breaker', () => {
  it('opens after consecutive failures, and a success resets the run', () => {
    const { b, call, transitions } = breaker();
    call(true);
    call(true);
    call(false);
    call(true);
    call(true);
    assert.equal(b.stateName, 'closed');
    call(true);
    assert.equal(b.stateName, 'open');
    assert.deepEqual(transitions, ['closed->open']);
  });

  it('refuses while open, telling how long is left', () => {
    const { b, call, clock } = breaker();
    for (let i = 0; i < 3; i++) call(true);
    clock.advance(400);
    const a = b.tryAcquire();
    assert.equal(a.ok, false);
    assert.equal(!a.ok && a.retryAfterMs, 600);
  });

  it('goes half-open after openFor, lets maxProbes through, and closes after successesToClose', () => {
    const { b, call, clock, transitions } = breaker({ halfOpen: { maxProbes: 1, successesToClose: 2 } });
    for (let i = 0; i < 3; i++) call(true);
    clock.advance(1000);
    assert.equal(b.stateName, 'half-open');
    const probe = b.tryAcquire();
    assert.ok(probe.ok);
    assert.equal(b.tryAcquire().ok, false, 'a second probe must wait while one is in flight');
    b.record(probe.permit, { failure: false, durationMs: 5 });
    assert.equal(b.stateName, 'half-open', 'one success of two');
    call(false);
    assert.equal(b.stateName, 'closed');
    assert.deepEqual(transitions, ['closed->open', 'open->half-open', 'half-open->closed']);
  });

  it('doubles the open time on each re-open, up to maxOpenFor, and forgets it once closed', () => {
    const { b, call, clock } = breaker({ openForMs: 1000, maxOpenForMs: 3000 });
    for (let i = 0; i < 3; i++) call(true);
    const openTimes: number[] = [];
    for (let round = 0; round < 3; round++) {
      openTimes.push(b.remainingOpenMs);
      clock.advance(b.remainingOpenMs);
      call(true); // the probe fails: re-open
    }
    openTimes.push(b.remainingOpenMs);
    assert.deepEqual(openTimes, [1000, 2000, 3000, 3000]);
    clock.advance(3000);
    call(false);
    call(false);
    assert.equal(b.stateName, 'closed');
    for (let i = 0; i < 3; i++) call(true);
    assert.equal(b.remainingOpenMs, 1000);
  });

  it('opens on failure rate only once minRequests calls are in the window', () => {
    const { b, call } = breaker({ consecutiveFailures: 0, failureRate: { thresholdPercent: 50, minRequests: 10, windowMs: 10_000 } });
    for (let i = 0; i < 4; i++) {
      call(true);
      call(false);
    }
    assert.equal(b.stateName, 'closed', '8 calls < minRequests');
    call(true);
    assert.equal(b.stateName, 'closed', '9 calls < minRequests');
    call(false);
    assert.equal(b.stateName, 'open', '5 of 10 failed = 50%');
  });

  it('forgets failures that slid out of the window', () => {
    const { b, call, clock } = breaker({ consecutiveFailures: 0, failureRate: { thresholdPercent: 50, minRequests: 4, windowMs: 10_000 } });
    call(true);
    call(true);
    call(true);
    clock.advance(11_000);
    call(false);
    call(false);
    call(false);
    call(true);
    assert.equal(b.stateName, 'closed', 'only 1 of the 4 calls in the window failed');
  });

  it('opens on slow-call rate', () => {
    const { b, call } = breaker({ consecutiveFailures: 0, failureRate: { thresholdPercent: 0, minRequests: 4, windowMs: 10_000 }, slowCall: { thresholdPercent: 75, durationMs: 1000 } });
    call(false, 1500);
    call(false, 2000);
    call(false, 10);
    assert.equal(b.stateName, 'closed');
    call(false, 1000);
    assert.equal(b.stateName, 'open', '3 of 4 calls at or over 1s');
  });

  it('ignores outcomes of calls admitted before the last transition', () => {
    const { b, call, clock } = breaker();
    const early = b.tryAcquire();
    assert.ok(early.ok);
    for (let i = 0; i < 3; i++) call(true);
    clock.advance(1000);
    call(false);
    call(false);
    assert.equal(b.stateName, 'closed');
    b.record(early.permit, { failure: true, durationMs: 5000 });
    call(true);
    call(true);
    assert.equal(b.stateName, 'closed', 'the stale failure must not count towards the run of 3');
  });

  it('release() frees a half-open probe slot without counting an outcome', () => {
    const { b, call, clock } = breaker();
    for (let i = 0; i < 3; i++) call(true);
    clock.advance(1000);
    const probe = b.tryAcquire();
    assert.ok(probe.ok);
    b.release(probe.permit);
    assert.equal(b.stateName, 'half-open');
    assert.ok(b.tryAcquire().ok);
  });

  it('reset() closes an open breaker', () => {
    const { b, call } = breaker();
    for (let i = 0; i < 3; i++) call(true);
    b.reset();
    assert.equal(b.stateName, 'closed');
    assert.ok(b.tryAcquire().ok);
  });

  it('keeps its invariants under any sequence of calls, outcomes and time (property)', () => {
    type Op = { kind: 'acquire' } | { kind: 'finish'; failure: boolean; slow: boolean } | { kind: 'cancel' } | { kind: 'advance'; ms: number };
    const op = fc.oneof(
      fc.constant<Op>({ kind: 'acquire' }),
      fc.record({ kind: fc.constant('finish' as const), failure: fc.boolean(), slow: fc.boolean() }),
      fc.constant<Op>({ kind: 'cancel' }),
      fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 4000 }) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 300 }), fc.integer({ min: 1, max: 3 }), (ops, maxProbes) => {
        const clock = new ManualClock();
        const s = settings({ halfOpen: { maxProbes, successesToClose: 2 }, failureRate: { thresholdPercent: 50, minRequests: 4, windowMs: 5000 }, slowCall: { thresholdPercent: 80, durationMs: 1000 } });
        let openedAt = 0;
        let transitions = 0;
        let last = 'closed' as BreakerStateName;
        const b = new CircuitBreaker(s, clock, (_from, to) => {
          if (to === 'open') openedAt = clock.now();
          last = to;
          transitions++;
        });
        const outstanding: { permit: { generation: number }; state: BreakerStateName; period: number }[] = [];
        for (const o of ops) {
          if (o.kind === 'acquire') {
            const state = b.stateName;
            const a = b.tryAcquire();
            if (state === 'closed') assert.ok(a.ok, 'a closed breaker admits every call');
            if (a.ok) outstanding.push({ permit: a.permit, state: b.stateName, period: transitions });
            else assert.ok(a.retryAfterMs > 0);
          } else if (o.kind === 'finish' || o.kind === 'cancel') {
            const p = outstanding.shift();
            if (!p) continue;
            if (o.kind === 'cancel') b.release(p.permit);
            else b.record(p.permit, { failure: o.failure, durationMs: o.slow ? 1500 : 10 });
          } else clock.advance(o.ms);
          // Probes admitted in the current half-open period never exceed maxProbes.
          const probes = outstanding.filter((p) => p.state === 'half-open' && p.period === transitions);
          assert.ok(probes.length <= maxProbes, `probes ${probes.length} > ${maxProbes}`);
          if (last === 'open' && b.stateName === 'open') {
            assert.ok(b.remainingOpenMs <= s.maxOpenForMs);
            assert.ok(clock.now() - openedAt < s.maxOpenForMs);
          }
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('breakers under model churn', () => {
  it('never forgets a breaker while it is open, however many other models come and go', () => {
    const clock = new ManualClock();
    const config = compile({ upstreams: [{ name: 'p', url: 'http://127.0.0.1:9', circuitBreaker: { scope: 'model', consecutiveFailures: 1, openFor: '1m' } }] });
    const upstream = new UpstreamState(config.upstreams.get('p')!, 'p', config.priorities.classes, clock, metrics, () => {});
    const failing = upstream.breakerFor('failing-model');
    const admission = failing.tryAcquire();
    assert.ok(admission.ok);
    failing.record(admission.permit, { failure: true, durationMs: 1 });
    for (let i = 0; i < 600; i++) upstream.breakerFor(`churn-${i}`).tryAcquire();
    assert.equal(upstream.breakerFor('failing-model'), failing, 'the same breaker, still there');
    assert.equal(failing.stateName, 'open');
    assert.ok(upstream.breakerEntries().length <= 257, 'closed breakers are still forgotten');
  });
});
