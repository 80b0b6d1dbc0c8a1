import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { BodyBudget } from '../../sidecar/proxy/inbound/body-budget.js';

describe('request-body budget', () => {
  it('never holds more than its max, and holds nothing once every lease is released', () => {
    const step = fc.oneof(
      fc.record({ lease: fc.nat(7), take: fc.integer({ min: 0, max: 400 }) }),
      fc.record({ lease: fc.nat(7), release: fc.constant(true) }),
      fc.record({ max: fc.integer({ min: 0, max: 1500 }) }),
    );
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 1000 }), fc.array(step, { maxLength: 60 }), (initialMax, steps) => {
        let max = initialMax;
        const budget = new BodyBudget(() => max);
        const leases = Array.from({ length: 8 }, () => ({ lease: budget.lease(), held: 0, released: false }));
        for (const s of steps) {
          if ('max' in s) {
            max = s.max; // a new config: it binds later takes, and what is held stays held
            continue;
          }
          const l = leases[s.lease]!;
          if ('take' in s) {
            const before = budget.held;
            const ok = l.lease.take(s.take);
            assert.equal(ok, !l.released && before + s.take <= max);
            if (ok) l.held += s.take;
            assert.equal(budget.held, before + (ok ? s.take : 0));
          } else {
            l.lease.release();
            l.held = 0;
            l.released = true;
          }
          assert.equal(budget.held, leases.reduce((sum, x) => sum + x.held, 0));
        }
        for (const l of leases) l.lease.release();
        assert.equal(budget.held, 0);
      }),
    );
  });

  it('releases a lease once, however many times it is asked', () => {
    const budget = new BodyBudget(() => 100);
    const a = budget.lease();
    const b = budget.lease();
    assert.ok(a.take(60));
    assert.ok(!b.take(41), 'past the max');
    assert.ok(b.take(40));
    a.release();
    a.release();
    assert.equal(budget.held, 40);
    assert.ok(!a.take(1), 'a released lease takes nothing more');
    b.release();
    assert.equal(budget.held, 0);
  });
});
