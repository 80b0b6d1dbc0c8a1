import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { FairQueue, OVERFLOW_CALLER } from '../../sidecar/resilience/fair-queue.js';

/** Serves the queue to its end, in the order it lets entries out. */
function drainOrder<T>(q: FairQueue<T>): T[] {
  const out: T[] = [];
  for (let e = q.peek(); e; e = q.peek()) {
    q.serve(e);
    out.push(e.item);
  }
  return out;
}

describe('fair queue', () => {
  it('serves one caller first come, first served', () => {
    const q = new FairQueue<number>();
    for (let i = 0; i < 5; i++) q.push('a', 10 * (5 - i), i);
    assert.deepEqual(drainOrder(q), [0, 1, 2, 3, 4]);
  });

  it('lets a caller that costs a tenth as much through ten times as often', () => {
    const q = new FairQueue<string>();
    for (let i = 0; i < 20; i++) q.push('big', 1000, `big${i}`);
    for (let i = 0; i < 100; i++) q.push('small', 100, `small${i}`);
    const first = drainOrder(q).slice(0, 44);
    assert.equal(first.filter((x) => x.startsWith('big')).length, 4);
  });

  it('stays fair after a caller claims an absurd cost (max_tokens: 1e22, NaN): each counts as MAX_COST at most', () => {
    for (const absurd of [1e22, Infinity, Number.NaN]) {
      const q = new FairQueue<string>();
      for (let i = 0; i < 3; i++) q.charge('evil', absurd);
      q.push('evil', absurd, 'evil0');
      for (let i = 0; i < 20; i++) q.push('big', 1000, `big${i}`);
      for (let i = 0; i < 100; i++) q.push('small', 100, `small${i}`);
      const first = drainOrder(q).filter((x) => !x.startsWith('evil')).slice(0, 44);
      assert.equal(first.filter((x) => x.startsWith('big')).length, 4, `after ${absurd}: ${first.join(' ')}`);
    }
  });

  it('gives an idle caller no credit: it starts at the virtual time', () => {
    const q = new FairQueue<string>();
    for (let i = 0; i < 10; i++) q.push('a', 10, `a${i}`);
    for (let i = 0; i < 5; i++) q.serve(q.peek()!);
    q.push('b', 10, 'b0');
    q.push('b', 10, 'b1');
    q.push('b', 10, 'b2');
    assert.deepEqual(drainOrder(q).slice(0, 6), ['b0', 'a5', 'b1', 'a6', 'b2', 'a7']);
  });

  it('charges admissions that did not wait', () => {
    const q = new FairQueue<string>();
    for (let i = 0; i < 3; i++) q.charge('greedy', 100);
    q.push('greedy', 100, 'g');
    q.push('other', 100, 'o');
    assert.deepEqual(drainOrder(q), ['o', 'g']);
  });

  it('caps distinct callers: past the cap, new ones share one bucket', () => {
    const q = new FairQueue<number>(4);
    for (let i = 0; i < 10; i++) q.push(`c${i}`, 1, i);
    assert.ok(q.callerCount <= 5);
    assert.equal(q.peek()!.caller === OVERFLOW_CALLER || q.peek()!.caller.startsWith('c'), true);
    assert.equal(drainOrder(q).length, 10);
  });

  it('removes entries that leave, and finds the newest', () => {
    const q = new FairQueue<number>();
    const a = q.push('a', 1, 1);
    q.push('b', 1, 2);
    assert.equal(q.newest()!.item, 2);
    assert.ok(q.remove(a));
    assert.equal(q.remove(a), false);
    assert.equal(q.length, 1);
    assert.deepEqual(drainOrder(q), [2]);
  });

  it('keeps two backlogged callers within the sum of their largest costs, whatever the costs (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 500 }), { minLength: 1, maxLength: 60 }), fc.array(fc.integer({ min: 1, max: 5000 }), { minLength: 1, maxLength: 60 }), (costsA, costsB) => {
        const q = new FairQueue<{ who: 'a' | 'b'; cost: number }>();
        for (const cost of costsA) q.push('a', cost, { who: 'a', cost });
        for (const cost of costsB) q.push('b', cost, { who: 'b', cost });
        const served = { a: 0, b: 0 };
        const left = { a: costsA.length, b: costsB.length };
        const bound = Math.max(...costsA) + Math.max(...costsB);
        for (let e = q.peek(); e; e = q.peek()) {
          q.serve(e);
          served[e.item.who] += e.item.cost;
          left[e.item.who]--;
          if (left.a > 0 && left.b > 0) assert.ok(Math.abs(served.a - served.b) <= bound, `${served.a} vs ${served.b} (bound ${bound})`);
        }
        assert.equal(q.length, 0);
      }),
      { numRuns: 300 },
    );
  });
});
