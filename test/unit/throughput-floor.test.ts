import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ThroughputFloor } from '../../sidecar/resilience/throughput-floor.js';

describe('throughput floor', () => {
  it('judges only whole windows, by their own rate', () => {
    const floor = new ThroughputFloor(100, 1000, 0); // 100 bytes/s over 1 s windows
    assert.equal(floor.record(10, 500), false, 'the window is not over yet');
    assert.equal(floor.record(10, 1000), true, '20 bytes in 1 s is below 100/s');
    assert.equal(floor.record(150, 1500), false);
    assert.equal(floor.record(0, 2000), false, '150 bytes in the second window is above');
  });

  it('never flags a stream that keeps above the floor, however its bytes arrive', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 10_000 }), fc.integer({ min: 100, max: 5000 }), fc.array(fc.integer({ min: 1, max: 200 }), { minLength: 1, maxLength: 200 }), (rate, windowMs, gaps) => {
        const floor = new ThroughputFloor(rate, windowMs, 0);
        let now = 0;
        for (const gap of gaps) {
          now += gap;
          // Sends at least `rate` bytes per second of the gap since the last chunk.
          assert.equal(floor.record(Math.ceil((rate * gap) / 1000), now), false);
        }
      }),
    );
  });

  it('flags a stream below the floor once a whole window has passed', () => {
    fc.assert(
      fc.property(fc.integer({ min: 10, max: 10_000 }), fc.integer({ min: 100, max: 5000 }), (rate, windowMs) => {
        const floor = new ThroughputFloor(rate, windowMs, 0);
        const tooFew = Math.floor((rate * windowMs) / 1000 / 2);
        assert.equal(floor.record(tooFew, windowMs), true);
      }),
    );
  });
});
