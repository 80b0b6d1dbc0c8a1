import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { Bulkhead, BulkheadRejection, type PriorityClass } from '../../sidecar/resilience/bulkhead.js';
import { ManualClock } from '../../sidecar/resilience/clock.js';

const CLASSES: PriorityClass[] = [
  { name: 'critical', reservedPercent: 25, maxSharePercent: 100 },
  { name: 'normal', reservedPercent: 0, maxSharePercent: 100 },
  { name: 'batch', reservedPercent: 0, maxSharePercent: 20 },
];
const [CRITICAL, NORMAL, BATCH] = [0, 1, 2];

function bulkhead(maxConcurrent: number, maxQueue: number, queueTimeoutMs = 1000, classes = CLASSES) {
  const clock = new ManualClock();
  return { b: new Bulkhead({ maxConcurrent, maxQueue, queueTimeoutMs }, classes, clock), clock };
}

const settle = () => new Promise((r) => setImmediate(r));
const reason = (p: Promise<void>) => p.then(() => 'admitted', (e: BulkheadRejection) => e.reason);

describe('bulkhead', () => {
  it('admits up to maxConcurrent at once and queues the rest', async () => {
    const { b } = bulkhead(2, 5, 1000, [{ name: 'normal', reservedPercent: 0, maxSharePercent: 100 }]);
    assert.ok(b.tryAcquire(0));
    assert.ok(b.tryAcquire(0));
    assert.equal(b.tryAcquire(0), false);
    const waiting = b.acquire(0);
    assert.equal(b.waiting, 1);
    b.release(0);
    await waiting;
    assert.equal(b.active, 2);
    assert.equal(b.waiting, 0);
  });

  it('rejects with queue-full when the queue is full', async () => {
    const { b } = bulkhead(1, 1, 1000, [{ name: 'normal', reservedPercent: 0, maxSharePercent: 100 }]);
    b.tryAcquire(0);
    const first = reason(b.acquire(0));
    assert.equal(await reason(b.acquire(0)), 'queue-full');
    b.release(0);
    assert.equal(await first, 'admitted');
  });

  it('rejects with queue-timeout after queueTimeout', async () => {
    const { b, clock } = bulkhead(1, 4, 500, [{ name: 'normal', reservedPercent: 0, maxSharePercent: 100 }]);
    b.tryAcquire(0);
    const waiting = reason(b.acquire(0));
    clock.advance(499);
    await settle();
    assert.equal(b.waiting, 1);
    clock.advance(1);
    assert.equal(await waiting, 'queue-timeout');
    assert.equal(b.waiting, 0);
  });

  it('leaves the queue when the caller aborts', async () => {
    const { b } = bulkhead(1, 4, 500, [{ name: 'normal', reservedPercent: 0, maxSharePercent: 100 }]);
    b.tryAcquire(0);
    const abort = new AbortController();
    const waiting = reason(b.acquire(0, abort.signal));
    abort.abort();
    assert.equal(await waiting, 'aborted');
    assert.equal(b.waiting, 0);
  });

  it('hands freed slots to the most important waiter first, FIFO within a class', async () => {
    const { b } = bulkhead(4, 10);
    for (let i = 0; i < 3; i++) assert.ok(b.tryAcquire(NORMAL)); // the 4th slot is reserved for critical
    assert.equal(b.tryAcquire(NORMAL), false);
    const order: string[] = [];
    const wait = (c: number, tag: string) => b.acquire(c).then(() => order.push(tag));
    const all = [wait(BATCH, 'batch-1'), wait(NORMAL, 'normal-1'), wait(NORMAL, 'normal-2')];
    assert.ok(b.tryAcquire(CRITICAL), 'critical takes its reserved slot at once despite the queue');
    const critical = wait(CRITICAL, 'critical-1');
    for (let i = 0; i < 4; i++) {
      b.release(i === 0 ? CRITICAL : NORMAL);
      await settle();
    }
    await Promise.all([...all, critical]);
    assert.deepEqual(order, ['critical-1', 'normal-1', 'normal-2', 'batch-1']);
  });

  it('keeps reserved slots for their class and caps a class at its maxShare', () => {
    const { b } = bulkhead(10, 0);
    let normal = 0;
    while (b.tryAcquire(NORMAL)) normal++;
    assert.equal(normal, 8, '25% of 10 = 2 slots stay reserved for critical');
    assert.ok(b.tryAcquire(CRITICAL));
    assert.ok(b.tryAcquire(CRITICAL));
    assert.equal(b.tryAcquire(CRITICAL), false);
    const { b: b2 } = bulkhead(10, 0);
    let batch = 0;
    while (b2.tryAcquire(BATCH)) batch++;
    assert.equal(batch, 2, 'batch may hold at most 20% of 10');
  });

  it('evicts the newest least important waiter when a more important one arrives at a full queue', async () => {
    const { b } = bulkhead(1, 2, 1000, CLASSES.map((c) => ({ ...c, reservedPercent: 0 })));
    b.tryAcquire(NORMAL);
    const batch1 = reason(b.acquire(BATCH));
    const batch2 = reason(b.acquire(BATCH));
    const critical = reason(b.acquire(CRITICAL));
    assert.equal(await batch2, 'evicted');
    assert.equal(await reason(b.acquire(BATCH)), 'queue-full', 'an equal class does not evict');
    b.release(NORMAL);
    assert.equal(await critical, 'admitted');
    b.release(CRITICAL);
    assert.equal(await batch1, 'admitted');
  });

  it('never exceeds its limits under any sequence of arrivals and departures (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.oneof(fc.record({ arrive: fc.integer({ min: 0, max: 2 }) }), fc.record({ leave: fc.nat() }), fc.record({ wait: fc.integer({ min: 1, max: 600 }) })), { maxLength: 120 }),
        fc.integer({ min: 1, max: 8 }),
        fc.integer({ min: 0, max: 6 }),
        async (ops, max, maxQueue) => {
          const { b, clock } = bulkhead(max, maxQueue, 500);
          const holding: number[] = [];
          for (const op of ops) {
            if ('arrive' in op) {
              const c = op.arrive;
              if (b.tryAcquire(c)) holding.push(c);
              else b.acquire(c).then(() => holding.push(c), () => {});
            } else if ('leave' in op) {
              if (holding.length > 0) b.release(holding.splice(op.leave % holding.length, 1)[0]!);
            } else clock.advance(op.wait);
            await settle();
            assert.ok(b.active <= max, `active ${b.active} > ${max}`);
            assert.equal(b.active, holding.length);
            assert.ok(b.waiting <= maxQueue);
            assert.ok(holding.filter((c) => c === BATCH).length <= Math.max(1, Math.floor(max * 0.2)));
          }
        },
      ),
      { numRuns: 150 },
    );
  });
});

describe('bulkhead: a limit that moves, and fair admission', () => {
  it('lets waiters in when the limit rises, and admits no one while over a lowered limit', async () => {
    const { b } = bulkhead(2, 10, 1000, [{ name: 'normal', reservedPercent: 0, maxSharePercent: 100 }]);
    b.tryAcquire(0);
    b.tryAcquire(0);
    const waiting = [reason(b.acquire(0)), reason(b.acquire(0))];
    b.setLimit(4);
    assert.deepEqual(await Promise.all(waiting), ['admitted', 'admitted']);
    b.setLimit(2);
    b.release(0);
    assert.equal(b.tryAcquire(0), false, '3 in flight of 2');
    b.release(0);
    b.release(0);
    assert.ok(b.tryAcquire(0));
  });

  it('lets waiters of a class in fairly between callers by cost', async () => {
    const { b } = bulkhead(1, 100, 10_000, [{ name: 'normal', reservedPercent: 0, maxSharePercent: 100 }]);
    b.tryAcquire(0, { caller: 'big', cost: 1000 });
    const order: string[] = [];
    const all: Promise<unknown>[] = [];
    for (let i = 0; i < 5; i++) all.push(b.acquire(0, undefined, { caller: 'big', cost: 1000 }).then(() => order.push('big')));
    for (let i = 0; i < 20; i++) all.push(b.acquire(0, undefined, { caller: 'small', cost: 100 }).then(() => order.push('small')));
    for (let i = 0; i < 25; i++) {
      b.release(0);
      await settle();
    }
    await Promise.all(all);
    assert.equal(order.slice(0, 11).filter((o) => o === 'big').length, 1, order.join(' '));
  });
});

describe('bulkhead limitFor (what an adaptive limit learns from what the provider held)', () => {
  it('is the largest limit at which no more would have been in flight, slots kept for idle classes included', () => {
    const { b } = bulkhead(14, 100, 1000, [{ name: 'critical', reservedPercent: 25, maxSharePercent: 100 }, { name: 'normal', reservedPercent: 0, maxSharePercent: 100 }]);
    for (let i = 0; i < 11; i++) assert.ok(b.tryAcquire(1)); // 14 less 3 kept for critical
    assert.equal(b.tryAcquire(1), false);
    assert.equal(b.limitFor(1, 10), 13, 'at 13, normal may hold 10 (3 kept for critical); at 14, 11');
    assert.equal(b.limitFor(1, 11), 14);
    assert.equal(b.limitFor(1, 12), 15, 'the provider held more than this limit lets in: past it');
    const plain = bulkhead(200, 100, 1000, [{ name: 'normal', reservedPercent: 0, maxSharePercent: 100 }]).b;
    assert.equal(plain.limitFor(0, 150), 150);
    assert.equal(plain.limitFor(0, 0), 1, 'never under one');
  });
});
