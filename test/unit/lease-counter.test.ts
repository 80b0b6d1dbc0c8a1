/**
 * The lease state machine of fleet limits (sidecar/fleet/lease-counter.ts) on
 * a manual clock, against the lease script's arithmetic in memory
 * (test/support/fake-lease-store.ts): pods spend from leases without asking
 * the store per request, leases follow each pod's pace and go back when it
 * idles, a store that is down or hangs holds no request past 50 ms, and the
 * fleet's bill is reconciled, outage spending included, once the store is
 * back, even empty. The bound as properties: lease-properties.test.ts; the
 * red team's faults: lease-faults.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HEARTBEAT_MS, LeaseCounter, type Admission } from '../../sidecar/fleet/lease-counter.js';
import { slotLimit } from '../../sidecar/fleet/fleet-rate.js';
import { STORE_DEADLINE_MS, SYNC_DEADLINE_MS } from '../../sidecar/fleet/redis-store.js';
import { ManualClock } from '../../sidecar/resilience/clock.js';
import { FakeLeaseStore } from '../support/fake-lease-store.js';

const HOUR = 3_600_000;
/** Ten minutes into an hour, so a test's window does not roll. */
const START = Date.UTC(2026, 0, 1, 0, 10);

function fleet(pods: number, limit: number, podsKnown: number | undefined = pods) {
  const clock = new ManualClock(START);
  const store = new FakeLeaseStore(clock);
  const counters = Array.from(
    { length: pods },
    (_, i) => new LeaseCounter({ windowMs: HOUR, limits: () => [limit], key: (start) => `budget:${start}`, maxLeaseShare: 0.01 }, { clock, store: () => store, pod: `pod-${i}`, pods: () => podsKnown }, 1),
  );
  return { clock, store, counters };
}

const tick = () => new Promise((r) => setImmediate(r));

/** Takes `amount`, letting the manual clock run to the store's deadline if the take waits: it must be decided by then. */
async function take(clock: ManualClock, counter: LeaseCounter, amount: number): Promise<Admission> {
  let decided: Admission | undefined;
  const pending = counter.take([amount]);
  if (!(pending instanceof Promise)) return pending;
  void pending.then((a) => (decided = a));
  await tick();
  if (decided) return decided;
  clock.advance(STORE_DEADLINE_MS);
  await tick();
  assert.ok(decided, `a take was still waiting ${STORE_DEADLINE_MS} ms after it was asked`);
  return decided;
}

describe('fleet leases', () => {
  it('spends from a lease without asking the store for each request, and tops it up ahead of need', async () => {
    const { clock, store, counters } = fleet(1, 1_000_000);
    const [pod] = counters as [LeaseCounter];
    for (let i = 0; i < 200; i++) {
      assert.deepEqual(await take(clock, pod, 100), { ok: true });
      pod.settle([100], [80]);
      clock.advance(10);
      await tick();
    }
    assert.ok(store.calls < 40, `${store.calls} syncs for 200 requests`);
  });

  it('gives a busy pod a larger lease than an idle one, and takes back what an idle pod held', async () => {
    const { clock, store, counters } = fleet(2, 1_000_000);
    const [busy, idle] = counters as [LeaseCounter, LeaseCounter];
    assert.ok((await take(clock, idle, 100)).ok);
    idle.settle([100], [100]);
    for (let i = 0; i < 100; i++) {
      assert.ok((await take(clock, busy, 500)).ok);
      busy.settle([500], [500]);
      clock.advance(20);
      await tick();
    }
    const held = (pod: string) => store.counters.get(`budget:${START - (START % HOUR)}`)!.records.get(pod)!.held[0]!;
    assert.ok(held('pod-0') > 5 * held('pod-1'), `busy holds ${held('pod-0')}, idle ${held('pod-1')}`);
    for (let i = 0; i < 6; i++) {
      clock.advance(HEARTBEAT_MS);
      await tick();
    }
    assert.equal(held('pod-0'), 0, 'an idle pod gives its lease back');
    assert.equal(held('pod-1'), 0);
  });

  it('refuses once the fleet has spent its limit, with Retry-After at the window\'s end', async () => {
    const { clock, counters } = fleet(3, 10_000);
    let refused: Admission | undefined;
    let heldElsewhere = 0;
    for (let i = 0; i < 100 && !refused; i++) {
      const pod = counters[i % 3]!;
      const admission = await take(clock, pod, 1000);
      if (admission.ok) pod.settle([1000], [1000]);
      else if (admission.retryAfterMs <= 1000) {
        // Others' leases hold the rest: ask again in a second, by when idle leases have gone back.
        heldElsewhere++;
        clock.advance(admission.retryAfterMs);
        await tick();
      } else refused = admission;
    }
    assert.ok(refused && !refused.ok);
    assert.equal(refused.retryAfterMs, HOUR - (START % HOUR) - clock.now());
    const billed = counters.reduce((sum, c) => sum + c.view().podSpent[0]!, 0);
    assert.equal(billed, 10_000, `all of it spent (${heldElsewhere} refusals while others held leases)`);
  });

  it('holds no request past 50 ms when the store hangs; after a second without an answer spends what it held and its share of what was left', async () => {
    const { clock, store, counters } = fleet(4, 100_000);
    const [pod] = counters as [LeaseCounter];
    assert.ok((await take(clock, pod, 1000)).ok);
    pod.settle([1000], [1000]);
    store.state = 'hang';
    const asked = clock.now();
    const slow = await take(clock, pod, 5000);
    assert.ok(clock.now() - asked <= STORE_DEADLINE_MS);
    assert.deepEqual(slow, { ok: false, unit: 0, retryAfterMs: 1000, reason: 'slow' }, 'a store that may only be slow hands out no share: ask again in a second');
    clock.advance(SYNC_DEADLINE_MS);
    await tick();
    assert.equal(pod.view().mode, 'local-share', 'a second without an answer: the store is down');
    const admission = await take(clock, pod, 5000);
    assert.ok(admission.ok, 'within its share');
    // Its share: what the fleet had left when last seen, over 4 pods.
    assert.ok(pod.sharesGiven[0]! >= 99_000 / 4 - 1000 && pod.sharesGiven[0]! <= 100_000 / 4, String(pod.sharesGiven[0]));
    assert.equal((await take(clock, pod, 30_000)).ok, false, 'past its share');
    pod.settle([5000], [5000]);
    store.state = 'up';
    store.flush(); // a Redis that restarted empty
    clock.advance(2000);
    await tick();
    assert.equal(pod.view().mode, 'shared');
    assert.equal(store.counters.get(`budget:${START - (START % HOUR)}`)!.spent[0], 6000, 'everything it spent, outage included, is counted again');
  });

  it('splits a minute\'s rate into six slots that add up to it', () => {
    for (const perMinute of [1, 5, 6, 7, 10, 59, 60, 61, 1000, 123_457]) {
      const slots = Array.from({ length: 6 }, (_, i) => slotLimit(perMinute, i * 10_000));
      assert.equal(slots.reduce((a, b) => a + b, 0), perMinute, `${perMinute}: ${slots}`);
      assert.ok(Math.max(...slots) <= Math.ceil(perMinute / 6));
    }
  });
});
