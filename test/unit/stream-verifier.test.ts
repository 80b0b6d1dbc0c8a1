import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { StreamVerifier } from '../../sidecar/resilience/stream-verifier.js';

/** Splits `text` at the given cut points. */
const split = (text: string, cuts: number[]) => {
  const at = [...new Set(cuts.map((c) => c % (text.length + 1)))].sort((a, b) => a - b);
  const pieces: string[] = [];
  let from = 0;
  for (const c of at) {
    pieces.push(text.slice(from, c));
    from = c;
  }
  pieces.push(text.slice(from));
  return pieces;
};

describe('stream verifier (regenerate and verify)', () => {
  it('relays exactly what follows the delivered text when the new stream repeats it, however both are cut into pieces', () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), fc.array(fc.nat(), { maxLength: 8 }), (delivered, rest, cuts) => {
        const v = new StreamVerifier(delivered);
        let out = '';
        for (const piece of split(delivered + rest, cuts)) {
          const verdict = v.push(piece);
          assert.notEqual(verdict.kind, 'diverged');
          if (verdict.kind === 'emit') out += verdict.text;
        }
        assert.equal(out, rest);
        assert.equal(v.caughtUp, true);
      }),
    );
  });

  it('says diverged, and never emits, when the new stream differs within the delivered text', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1 }), fc.nat(), fc.string({ minLength: 1, maxLength: 1 }), fc.array(fc.nat(), { maxLength: 8 }), (delivered, at, other, cuts) => {
        const i = at % delivered.length;
        fc.pre(delivered[i] !== other);
        const changed = delivered.slice(0, i) + other + delivered.slice(i + 1);
        const v = new StreamVerifier(delivered);
        let verdict = 'hold';
        for (const piece of split(changed, cuts)) {
          const r = v.push(piece);
          assert.notEqual(r.kind, 'emit', 'nothing is relayed before the delivered text has matched');
          if (r.kind === 'diverged') {
            verdict = 'diverged';
            break;
          }
        }
        assert.equal(verdict, 'diverged');
      }),
    );
  });

  it('holds a new stream that ends before it caught up', () => {
    const v = new StreamVerifier('Hello, world');
    assert.deepEqual(v.push('Hello'), { kind: 'hold' });
    assert.equal(v.caughtUp, false);
  });
});
