/**
 * The faults the red team of issue 29 found in fleet leases, on a manual
 * clock against the lease script's arithmetic in memory: a request larger
 * than what the fleet has left takes no lease; a refused request's lease goes
 * back at once; a store that lost its data (FLUSHALL, a restart empty, after
 * the pod that spent has gone) is re-seeded from what the pods knew; a pod
 * that knows nothing of the window takes nothing until the store answers, and
 * a restarted one spends its share of what it kept; a store far away is not
 * "spent", and its refused demand grows the lease; a lower limit shrinks it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FleetBudget, MAX_LEASE_SHARE } from '../../sidecar/fleet/fleet-budget.js';
import { HEARTBEAT_MS, LeaseCounter, type Admission, type CounterDeps } from '../../sidecar/fleet/lease-counter.js';
import { STORE_DEADLINE_MS } from '../../sidecar/fleet/redis-store.js';
import { ManualClock } from '../../sidecar/resilience/clock.js';
import { FakeLeaseStore } from '../support/fake-lease-store.js';

const HOUR = 3_600_000;
const START = Date.UTC(2026, 0, 1, 0, 10);
const WINDOW = START - (START % HOUR);
const tick = async (n = 3) => {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
};

function fleet(pods: number, limit: number) {
  const clock = new ManualClock(START);
  const store = new FakeLeaseStore(clock);
  let lost = 0;
  const all: LeaseCounter[] = [];
  const deps = (i: number): CounterDeps => ({ clock, store: () => store, pod: `pod-${i}`, pods: () => pods, lost: () => (lost++, all.forEach((c) => c.resync())) });
  const counter = (i: number) => {
    const c = new LeaseCounter({ windowMs: HOUR, limits: () => [limit], key: (s) => `budget:${s}`, maxLeaseShare: MAX_LEASE_SHARE, refreshMs: HEARTBEAT_MS }, deps(i), 1);
    all.push(c);
    clock.advance(0); // its first sync, at once
    return c;
  };
  const record = (i: number) => store.counters.get(`budget:${WINDOW}`)?.records.get(`pod-${i}`);
  return { clock, store, counter, record, deps, lost: () => lost, count: () => store.counters.get(`budget:${WINDOW}`)?.spent[0] ?? 0 };
}

/** Takes `amount`, running the clock to the store's deadline if the take waits. */
async function take(clock: ManualClock, counter: LeaseCounter, amount: number): Promise<Admission> {
  let decided: Admission | undefined;
  const pending = counter.take([amount]);
  if (!(pending instanceof Promise)) return pending;
  void pending.then((a) => (decided = a));
  await tick();
  if (!decided) clock.advance(STORE_DEADLINE_MS);
  await tick();
  assert.ok(decided, 'a take still waited past the store\'s deadline');
  return decided;
}

async function spend(clock: ManualClock, pod: LeaseCounter, amount: number, times: number) {
  for (let i = 0; i < times; i++) {
    assert.ok((await take(clock, pod, amount)).ok, `take ${i}`);
    pod.settle([amount], [amount]);
    clock.advance(10);
    await tick();
  }
}

describe('fleet leases under the red team\'s faults', () => {
  it('refuses a request larger than what the fleet has left at once, taking no lease; a refused request\'s lease goes back at once', async () => {
    const { clock, store, counter, record } = fleet(2, 1_000_000);
    const [a, b] = [counter(0), counter(1)];
    await tick();
    const calls = store.calls;
    const huge = await take(clock, a, 2_000_000);
    assert.deepEqual(huge, { ok: false, unit: 0, retryAfterMs: HOUR - (START % HOUR), reason: 'too-large' });
    assert.equal(store.calls, calls, 'no sync for a request that cannot fit');
    assert.equal(record(0)?.held[0] ?? 0, 0);
    await spend(clock, b, 1000, 20);
    // Fits in what is left, not in what others hold: refused, and what the sync granted for it goes back at once.
    store.counters.get(`budget:${WINDOW}`)!.held[0]! += 500_000; // another pod's requests in flight
    const big = await take(clock, a, 600_000);
    assert.equal(big.ok, false);
    assert.equal(!big.ok && big.reason, 'held');
    await tick(6);
    const cap = (1_000_000 * MAX_LEASE_SHARE) / 2;
    assert.ok(record(0)!.held[0]! <= cap, `pod 0 holds ${record(0)!.held[0]} for a request it refused`);
    assert.ok(record(1)!.held[0]! <= cap + 1000, `pod 1 holds ${record(1)!.held[0]}`);
  });

  it('re-seeds a store that lost its data from what the pods last saw, even after the pod that spent is gone', async () => {
    for (const how of ['flushed', 'gone'] as const) {
      const { clock, store, counter, count, lost } = fleet(2, 100_000);
      const [x, y] = [counter(0), counter(1)];
      await tick();
      await spend(clock, x, 5000, 18);
      clock.advance(HEARTBEAT_MS + 500); // x reports all; y refreshes what it knows of the fleet
      await tick(6);
      assert.equal(y.view().fleetSpent![0], 90_000, `${how}: y knows what the fleet spent`);
      if (how === 'gone') x.close();
      store.flush(); // FLUSHALL, or a restart empty: nobody is told
      let served = 0;
      for (let i = 0; i < 60; i++) {
        const a = await take(clock, y, 500);
        if (a.ok) {
          y.settle([500], [500]);
          served++;
        }
        clock.advance(50);
        await tick();
      }
      assert.ok(served * 500 <= 10_000, `${how}: y spent ${served * 500} past the 90,000 spent before the loss`);
      assert.ok(lost() >= 1, `${how}: the loss was noticed`);
      clock.advance(HEARTBEAT_MS);
      await tick(6);
      assert.equal(count(), 90_000 + served * 500, `${how}: the count is rebuilt`);
    }
  });

  it('gives a pod that knows nothing of the window no share: its requests wait for the store at most 50 ms, then are refused for a second', async () => {
    const { clock, store, counter } = fleet(4, 1_000_000);
    store.state = 'down';
    const fresh = counter(0);
    await tick();
    clock.advance(10);
    const asked = clock.now();
    const refused = await take(clock, fresh, 500);
    assert.ok(clock.now() - asked <= STORE_DEADLINE_MS);
    assert.deepEqual(refused, { ok: false, unit: 0, retryAfterMs: 1000, reason: 'unheard' });
    assert.equal(fresh.sharesGiven[0], 0);
    assert.equal(fresh.view().fleetSpent, undefined, 'the fleet\'s spending is unknown, not this pod\'s');
    // A restarted pod that kept what it knew spends its share of what was left.
    fresh.know(WINDOW, [800_000]);
    assert.ok((await take(clock, fresh, 500)).ok);
    assert.equal(fresh.sharesGiven[0], 200_000 / 4);
    // Once the store answers, requests wait for it and are served.
    const other = counter(1);
    store.state = 'up';
    other.resync();
    await tick();
    assert.ok((await take(clock, other, 500)).ok);
  });

  it('keeps a restarted fleet budget\'s knowledge of the fleet and its unreported spending (kept state)', async () => {
    const { clock, store, deps } = fleet(4, 0);
    const limits = { window: 'hour' as const, tokens: 100_000, cost: 0 };
    const before = new FleetBudget(limits, deps(0), (s) => `budget:${s}`);
    await tick();
    assert.ok((await before.tryReserve({ tokens: 60_000, cost: 0 })).ok);
    before.settle({ tokens: 60_000, cost: 0 }, { tokens: 60_000, cost: 0 });
    clock.advance(HEARTBEAT_MS + 10);
    await tick(6);
    store.state = 'down';
    assert.ok((await before.tryReserve({ tokens: 1000, cost: 0 })).ok);
    before.settle({ tokens: 1000, cost: 0 }, { tokens: 1000, cost: 0 });
    const saved = before.saved();
    assert.deepEqual([saved.fleetSpent?.tokens, saved.unreported?.tokens], [60_000, 1000]);
    before.close();
    const after = new FleetBudget(limits, deps(9), (s) => `budget:${s}`);
    assert.equal(after.snapshot().fleet.known, false);
    after.restore(saved);
    assert.equal(after.snapshot().spent.tokens, 61_000, 'the fleet\'s as known, with what it spent unreported');
    const refused = after.tryReserve({ tokens: 15_000, cost: 0 });
    assert.equal((refused instanceof Promise ? await refused : refused).ok, false, 'its share is (100,000 - 60,000) / 4 less what it spent');
    store.state = 'up';
    clock.advance(1000);
    await tick(6);
    assert.equal(store.counters.get(`budget:${WINDOW}`)!.spent[0], 61_000, 'what its last life spent unreported is counted');
  });

  it('says a store far away did not answer, not that the budget is spent, and grows the lease so later requests do not wait', async () => {
    const { clock, store, counter } = fleet(1, 100_000_000);
    store.delayMs = 80;
    const pod = counter(0);
    clock.advance(200);
    await tick(6);
    const reasons = new Map<string, number>();
    let late = 0;
    for (let i = 0; i < 300; i++) {
      const a = await take(clock, pod, 100 + ((i * 37) % 2000));
      if (a.ok) pod.settle([100 + ((i * 37) % 2000)], [100 + ((i * 37) % 2000)]);
      else {
        reasons.set(a.reason, (reasons.get(a.reason) ?? 0) + 1);
        if (i >= 100) late++;
      }
      clock.advance(10);
      await tick();
    }
    assert.deepEqual([...reasons.keys()].filter((r) => r !== 'slow'), [], JSON.stringify([...reasons]));
    assert.ok(late <= 4, `${late} of 200 refused after the first second`);
  });

  it('shrinks the lease when the limit is lowered below what it covers', async () => {
    const { clock, counter } = fleet(1, 100_000);
    const pod = counter(0);
    await tick();
    await spend(clock, pod, 990, 31);
    assert.ok(pod.view().held[0]! - pod.view().unreported[0]! >= 990, 'holds a lease');
    pod.reconfigure({ windowMs: HOUR, limits: () => [31_500], key: (s) => `budget:${s}`, maxLeaseShare: MAX_LEASE_SHARE, refreshMs: HEARTBEAT_MS });
    const a = await take(clock, pod, 990);
    assert.equal(a.ok, false);
    pod.reconfigure({ windowMs: HOUR, limits: () => [5000], key: (s) => `budget:${s}`, maxLeaseShare: MAX_LEASE_SHARE, refreshMs: HEARTBEAT_MS });
    assert.deepEqual(await take(clock, pod, 990), { ok: false, unit: 0, retryAfterMs: HOUR - (clock.wallTime() % HOUR), reason: 'spent' });
  });
});
