import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { Counter, Registry } from 'prom-client';
import { CellCounter } from '../../sidecar/cell-counter.js';

const labelNames = ['upstream', 'class', 'outcome'] as const;
type Labels = Partial<Record<(typeof labelNames)[number], string | number>>;

const labels = fc.record<Labels>(
  { upstream: fc.constantFrom('a', 'b'), class: fc.constantFrom('none', 'timeout', 3), outcome: fc.constantFrom('ok', 'upstream_error') },
  { requiredKeys: ['upstream'] },
);
const step = fc.oneof(
  { weight: 8, arbitrary: fc.record({ op: fc.constant('inc' as const), labels, value: fc.option(fc.nat(1000), { nil: undefined }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('read' as const) }) },
);

function pair() {
  const [plainRegistry, cellRegistry] = [new Registry(), new Registry()];
  const config = { name: 'x_total', help: 'x', labelNames };
  return {
    plain: new Counter({ ...config, registers: [plainRegistry] }),
    cells: new CellCounter({ ...config, registers: [cellRegistry] }),
    text: () => Promise.all([plainRegistry.metrics(), cellRegistry.metrics()]),
  };
}

describe('CellCounter', () => {
  it('reads as prom-client\'s Counter would, after any counts and between them', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(step, { maxLength: 60 }), async (steps) => {
        const { plain, cells, text } = pair();
        for (const s of steps) {
          if (s.op === 'inc') {
            plain.inc(s.labels, s.value);
            cells.inc(s.labels, s.value);
          } else {
            const [a, b] = await text();
            assert.equal(b, a);
          }
        }
        const [a, b] = await text();
        assert.equal(b, a);
      }),
      { numRuns: 300 },
    );
  });

  it('refuses what prom-client refuses: an unknown label, a negative or infinite count', () => {
    const { cells } = pair();
    assert.throws(() => cells.inc({ upstream: 'a', nope: 'x' } as Labels), /label/i);
    assert.throws(() => cells.inc({ upstream: 'a' }, -1), /decrease/);
    assert.throws(() => cells.inc({ upstream: 'a' }, Infinity), /not a valid number/);
  });

  it('counts without labels as prom-client does', async () => {
    const registry = new Registry();
    const bare = new CellCounter({ name: 'y_total', help: 'y', labelNames: [], registers: [registry] });
    bare.inc({});
    bare.inc({}, 2);
    assert.match(await registry.metrics(), /^y_total 3$/m);
  });
});
