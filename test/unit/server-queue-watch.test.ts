/**
 * The watch on a model server's own queue, on a ManualClock: one read in
 * flight at most, the next timed from the end of the last, each aborted at
 * its timeout, stop() aborting the one in flight; a reading of requests
 * waiting reaches the adaptive limit (held and cut gently, reason
 * server-queue), a failed or empty one does not.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AdaptiveLimit, GENTLE_CUT_TO, type LimitChange } from '../../sidecar/resilience/adaptive-limit.js';
import { ManualClock } from '../../sidecar/resilience/clock.js';
import { ServerQueueWatch } from '../../sidecar/resilience/server-queue-watch.js';

const settle = () => new Promise((r) => setImmediate(r));
const settings = { intervalMs: 1000, timeoutMs: 200 };

/** Reads the test answers: each call waits for `answer` (or its abort, which it honours). */
function scripted() {
  const pending: { resolve(n: number | undefined): void; signal: AbortSignal }[] = [];
  let calls = 0;
  const read = (signal: AbortSignal) =>
    new Promise<number | undefined>((resolve, reject) => {
      calls++;
      pending.push({ resolve, signal });
      signal.addEventListener('abort', () => reject(new Error('aborted')));
    });
  return { read, pending, calls: () => calls };
}

describe('server queue watch', () => {
  it('reads one at a time, the next an interval after the end of the last, and says what the last read said', async () => {
    const clock = new ManualClock();
    const { read, pending, calls } = scripted();
    const heard: [number, number][] = [];
    const watch = new ServerQueueWatch(settings, clock, read, (waiting, holdMs) => heard.push([waiting, holdMs]));
    watch.start();
    assert.equal(calls(), 1);
    assert.equal(watch.waiting, undefined, 'nothing read yet');
    clock.advance(150);
    assert.equal(calls(), 1, 'never two in flight');
    pending[0]!.resolve(3);
    await settle();
    assert.equal(watch.waiting, 3);
    assert.deepEqual(heard, [[3, 2 * settings.intervalMs]], 'held for two intervals (more than an interval and a timeout)');
    clock.advance(settings.intervalMs - 1);
    assert.equal(calls(), 1, 'timed from the end of the last read');
    clock.advance(1);
    assert.equal(calls(), 2);
    pending[1]!.resolve(0);
    await settle();
    assert.equal(watch.waiting, 0, 'an empty queue is a reading');
    assert.equal(heard.length, 1, 'and nothing to hold for');
    clock.advance(settings.intervalMs);
    pending[2]!.resolve(undefined);
    await settle();
    assert.equal(watch.waiting, undefined, 'a read that says nothing leaves nothing known');
    assert.equal(heard.length, 1);
    watch.stop();
  });

  it('aborts a read at its timeout, counts it as saying nothing, and reads again an interval later', async () => {
    const clock = new ManualClock();
    const { read, pending, calls } = scripted();
    const watch = new ServerQueueWatch(settings, clock, read, () => {});
    watch.start();
    pending[0]!.resolve(4);
    await settle();
    assert.equal(watch.waiting, 4);
    clock.advance(settings.intervalMs);
    assert.equal(calls(), 2);
    clock.advance(settings.timeoutMs);
    assert.equal(pending[1]!.signal.aborted, true, 'aborted at its timeout');
    await settle();
    assert.equal(watch.waiting, undefined, 'what the server said before is not taken as still true');
    clock.advance(settings.intervalMs);
    assert.equal(calls(), 3);
    watch.stop();
  });

  it('stops for good: the read in flight is aborted and no other starts', async () => {
    const clock = new ManualClock();
    const { read, pending, calls } = scripted();
    const watch = new ServerQueueWatch(settings, clock, read, () => assert.fail('a stopped watch says nothing'));
    watch.start();
    watch.stop();
    assert.equal(pending[0]!.signal.aborted, true);
    await settle();
    clock.advance(10 * settings.intervalMs);
    assert.equal(calls(), 1);

    const second = scripted();
    const stopped = new ServerQueueWatch(settings, clock, second.read, () => assert.fail('a stopped watch says nothing'));
    stopped.start();
    second.pending[0]!.resolve(5);
    stopped.stop(); // between the answer and its handling
    await settle();
    clock.advance(10 * settings.intervalMs);
    assert.equal(second.calls(), 1);
  });

  it('holds a longer timeout\'s gap: until the next reading is due at the latest', () => {
    const watch = new ServerQueueWatch({ intervalMs: 1000, timeoutMs: 3000 }, new ManualClock(), async () => undefined, () => {});
    assert.equal(watch.holdMs, 4000);
  });

  it('holds the endpoint\'s adaptive limit and cuts it gently while the server reports requests waiting', async () => {
    const clock = new ManualClock();
    const changes: [number, LimitChange][] = [];
    const limit = new AdaptiveLimit({ min: 4, max: 1024, initial: 40 }, clock, (l, why) => changes.push([l, why]));
    let waiting: number | undefined = 3;
    const watch = new ServerQueueWatch(settings, clock, async () => waiting, (n, holdMs) => limit.serverQueue(n, holdMs));
    watch.start();
    await settle();
    const gently = (l: number) => Math.floor(GENTLE_CUT_TO * l);
    assert.deepEqual(changes, [[gently(40), 'server-queue']], 'a gentle cut');
    limit.served(clock.now(), 40);
    assert.equal(limit.limit, gently(40), 'growth held');
    for (let i = 0; i < 3; i++) {
      clock.advance(settings.intervalMs);
      await settle();
    }
    const expected = [gently(40)];
    while (expected.length < 4) expected.push(gently(expected.at(-1)!));
    assert.deepEqual(changes.map(([l]) => l), expected, 'one gentle cut per reading');
    assert.ok(changes.every(([, why]) => why === 'server-queue'));
    const low = limit.limit;
    waiting = 0;
    clock.advance(settings.intervalMs);
    await settle();
    assert.equal(limit.limit, low, 'an empty queue cuts nothing');
    clock.advance(2 * settings.intervalMs);
    await settle();
    for (let i = 0; i < 2 * low; i++) limit.served(clock.now(), low);
    assert.ok(limit.limit > low, `it grows again once the hold is over: ${limit.limit}`);
    watch.stop();
  });
});
