import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { Histogram, Registry } from 'prom-client';
import { CellHistogram } from '../../sidecar/cell-histogram.js';

const labelNames = ['upstream', 'outcome'] as const;
const buckets = [0.005, 0.01, 0.1, 1, 2.5, 60];
const labels = fc.record({ upstream: fc.constantFrom('a', 'b', 'c'), outcome: fc.constantFrom('ok', 'upstream_error', 'cancelled') }, { requiredKeys: ['upstream'] });
const value = fc.oneof(fc.constantFrom(0, 0.005, 0.01, 1, 60, 61), fc.double({ min: 0, max: 100, noNaN: true }));
const step = fc.oneof({ weight: 10, arbitrary: fc.record({ op: fc.constant('observe' as const), labels, value }) }, { weight: 1, arbitrary: fc.record({ op: fc.constant('read' as const) }) });

function pair() {
  const [plainRegistry, cellRegistry] = [new Registry(), new Registry()];
  const config = { name: 'x_seconds', help: 'x', labelNames, buckets };
  return {
    plain: new Histogram({ ...config, registers: [plainRegistry] }),
    cells: new CellHistogram({ ...config, registers: [cellRegistry] }),
    cellRegistry,
    // The series in the order each first appeared is the same; the exposition is compared line by line, sorted (prom-client keeps a hash order).
    text: async () => (await Promise.all([plainRegistry.metrics(), cellRegistry.metrics()])).map((t) => t.split('\n').sort().join('\n')),
  };
}

describe('CellHistogram', () => {
  it('reads as prom-client\'s Histogram would, after any observations and between them', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(step, { maxLength: 80 }), async (steps) => {
        const { plain, cells, text } = pair();
        for (const s of steps) {
          if (s.op === 'observe') {
            plain.observe(s.labels, s.value);
            cells.observe(s.labels, s.value);
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

  it('refuses what prom-client refuses: a label it does not have, a value that is not a number', () => {
    const { cells } = pair();
    assert.throws(() => cells.observe({ upstream: 'a', nope: 'x' } as never, 1), /no label nope/);
    assert.throws(() => cells.observe({ upstream: 'a' }, Number.NaN), /not a finite number/);
    assert.throws(() => new CellHistogram({ name: 'y', help: 'y', labelNames: ['le'], buckets, registers: [] }), /"le"/);
  });

  it('is reset with its registry', async () => {
    const { cells, cellRegistry } = pair();
    cells.observe({ upstream: 'a' }, 1);
    cellRegistry.resetMetrics();
    assert.doesNotMatch(await cellRegistry.metrics(), /x_seconds_count/);
  });
});
