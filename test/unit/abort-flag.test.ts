import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { AbortFlag } from '../../sidecar/resilience/index.js';

test('an abort calls each listener once, in order, and none added after it', () => {
  const flag = new AbortFlag();
  const calls: string[] = [];
  flag.addEventListener('abort', () => calls.push('a'));
  flag.addEventListener('abort', () => calls.push('b'));
  flag.abort();
  flag.abort();
  flag.addEventListener('abort', () => calls.push('late'));
  flag.abort();
  assert.deepEqual(calls, ['a', 'b']);
  assert.equal(flag.aborted, true);
});

test('a listener removed before the abort, or by an earlier listener during it, is not called; a throw stops no other listener', () => {
  const flag = new AbortFlag();
  const calls: string[] = [];
  const removed = () => calls.push('removed');
  const later = () => calls.push('later');
  flag.addEventListener('abort', removed);
  flag.removeEventListener('abort', removed);
  flag.addEventListener('abort', () => {
    calls.push('first');
    flag.removeEventListener('abort', later);
    throw new Error('listener failed');
  });
  flag.addEventListener('abort', later);
  flag.addEventListener('abort', () => calls.push('last'));
  assert.throws(() => flag.abort(), /listener failed/);
  assert.deepEqual(calls, ['first', 'last']);
});

test('it behaves as an AbortSignal does for any sequence of adds, removes and an abort', () => {
  const op = fc.oneof(
    fc.record({ kind: fc.constant('add' as const), listener: fc.nat(4) }),
    fc.record({ kind: fc.constant('remove' as const), listener: fc.nat(4) }),
    fc.record({ kind: fc.constant('abort' as const) }),
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 30 }), (ops) => {
      const flag = new AbortFlag();
      const controller = new AbortController();
      const ours: number[] = [];
      const theirs: number[] = [];
      const mine = Array.from({ length: 5 }, (_, i) => () => void ours.push(i));
      const node = Array.from({ length: 5 }, (_, i) => () => void theirs.push(i));
      const added = new Set<number>();
      for (const o of ops) {
        if (o.kind === 'abort') {
          flag.abort();
          controller.abort();
        } else if (o.kind === 'add') {
          // An AbortSignal adds a listener once however often it is added; the sidecar never adds one twice.
          if (added.has(o.listener)) continue;
          added.add(o.listener);
          flag.addEventListener('abort', mine[o.listener]!);
          controller.signal.addEventListener('abort', node[o.listener]!, { once: true });
        } else {
          added.delete(o.listener);
          flag.removeEventListener('abort', mine[o.listener]!);
          controller.signal.removeEventListener('abort', node[o.listener]!);
        }
      }
      assert.deepEqual(ours, theirs);
      assert.equal(flag.aborted, controller.signal.aborted);
    }),
  );
});
