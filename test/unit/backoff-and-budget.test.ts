import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { backoffDelay, type BackoffSettings } from '../../sidecar/resilience/backoff.js';
import { ManualClock } from '../../sidecar/resilience/clock.js';
import { RetryBudget } from '../../sidecar/resilience/retry-budget.js';

const settingsArb = fc.record({
  baseMs: fc.integer({ min: 1, max: 5000 }),
  maxMs: fc.integer({ min: 1, max: 60_000 }),
  multiplier: fc.double({ min: 1, max: 10, noNaN: true }),
  jitter: fc.constantFrom<BackoffSettings['jitter']>('full', 'equal', 'decorrelated', 'none'),
}).filter((s) => s.baseMs <= s.maxMs);

describe('backoff', () => {
  it('grows exponentially without jitter and stops at max', () => {
    const s: BackoffSettings = { baseMs: 250, maxMs: 2000, multiplier: 2, jitter: 'none' };
    assert.deepEqual([1, 2, 3, 4, 5].map((n) => backoffDelay(s, n, 0)), [250, 500, 1000, 2000, 2000]);
  });

  it('stays within its jitter bounds for every setting, retry and random draw (property)', () => {
    fc.assert(
      fc.property(settingsArb, fc.integer({ min: 1, max: 30 }), fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), fc.integer({ min: 0, max: 60_000 }), (s, retry, r, previous) => {
        const d = backoffDelay(s, retry, previous, () => r);
        const exp = Math.min(s.maxMs, s.baseMs * s.multiplier ** (retry - 1));
        assert.ok(d >= 0 && d <= s.maxMs, `delay ${d} outside [0, ${s.maxMs}]`);
        if (s.jitter === 'none') assert.equal(d, exp);
        if (s.jitter === 'full') assert.ok(d <= exp);
        if (s.jitter === 'equal') assert.ok(d >= exp / 2 && d <= exp);
        if (s.jitter === 'decorrelated') assert.ok(d >= s.baseMs);
      }),
    );
  });

  it('is non-decreasing in the retry number without jitter (property)', () => {
    fc.assert(
      fc.property(settingsArb, fc.integer({ min: 1, max: 30 }), (s, retry) => {
        const none = { ...s, jitter: 'none' as const };
        assert.ok(backoffDelay(none, retry + 1, 0) >= backoffDelay(none, retry, 0));
      }),
    );
  });
});

describe('retry budget', () => {
  it('allows minPerSecond × window retries with no traffic, then refuses', () => {
    const budget = new RetryBudget({ ratioPercent: 20, minPerSecond: 1, windowMs: 3000 }, new ManualClock());
    assert.equal(budget.allowance(), 3);
    assert.ok(budget.tryWithdraw());
    assert.ok(budget.tryWithdraw());
    assert.ok(budget.tryWithdraw());
    assert.equal(budget.tryWithdraw(), false);
  });

  it('adds ratio% of requests, and frees retries as the window slides', () => {
    const clock = new ManualClock();
    const budget = new RetryBudget({ ratioPercent: 20, minPerSecond: 0, windowMs: 10_000 }, clock);
    for (let i = 0; i < 50; i++) budget.recordRequest();
    let granted = 0;
    while (budget.tryWithdraw()) granted++;
    assert.equal(granted, 10);
    clock.advance(10_000);
    assert.equal(budget.tryWithdraw(), false, 'the requests slid out too');
    for (let i = 0; i < 5; i++) budget.recordRequest();
    assert.ok(budget.tryWithdraw());
  });

  it('never grants more than its allowance within a window (property)', () => {
    fc.assert(
      fc.property(
        fc.record({ ratioPercent: fc.integer({ min: 0, max: 100 }), minPerSecond: fc.integer({ min: 0, max: 20 }), windowMs: fc.integer({ min: 100, max: 20_000 }) }),
        fc.array(fc.oneof(fc.constant('request' as const), fc.constant('retry' as const)), { maxLength: 400 }),
        (s, ops) => {
          const budget = new RetryBudget(s, new ManualClock()); // time stands still: one window
          let requests = 0;
          let retries = 0;
          for (const op of ops) {
            if (op === 'request') {
              budget.recordRequest();
              requests++;
            } else if (budget.tryWithdraw()) retries++;
            assert.ok(retries <= (s.minPerSecond * s.windowMs) / 1000 + (s.ratioPercent / 100) * requests + 1e-9);
          }
        },
      ),
    );
  });
});

describe('system clock', () => {
  it('clamps a delay Node cannot hold (over 2^31−1 ms) instead of firing at once', async () => {
    const { systemClock } = await import('../../sidecar/resilience/clock.js');
    let fired = false;
    const timer = systemClock.setTimer(() => (fired = true), 1000 * 3_600_000); // 1000h
    await new Promise((r) => setTimeout(r, 50));
    systemClock.clearTimer(timer);
    assert.equal(fired, false);
  });

  it("runs no timer before now() reaches its due time (Node's own timers run most of them up to ~2 ms early)", async () => {
    const { systemClock } = await import('../../sidecar/resilience/clock.js');
    const early: number[] = [];
    await Promise.all(
      Array.from({ length: 200 }, (_, i) => {
        const ms = 5 + ((i * 7.37) % 20); // whole and fractional delays
        const due = systemClock.now() + ms;
        return new Promise<void>((resolve) =>
          systemClock.setTimer(() => {
            if (systemClock.now() < due) early.push(due - systemClock.now());
            resolve();
          }, ms),
        );
      }),
    );
    assert.deepEqual(early, [], `${early.length} of 200 timers ran before their due time`);
  });

  it('cancels a timer whether or not it was re-armed, and takes no handle as a no-op', async () => {
    const { systemClock } = await import('../../sidecar/resilience/clock.js');
    let fired = 0;
    const timers = Array.from({ length: 50 }, (_, i) => systemClock.setTimer(() => fired++, 2 + (i % 5) + 0.5));
    await new Promise((r) => setTimeout(r, 4)); // some ran early and were re-armed
    for (const timer of timers) systemClock.clearTimer(timer);
    const before = fired;
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(fired, before, 'nothing ran after its cancel');
    systemClock.clearTimer(undefined);
  });
});
