import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ManualClock } from '../../sidecar/resilience/clock.js';
import { DegradationMonitor, type DegradationSettings } from '../../sidecar/resilience/degradation.js';

const settings: DegradationSettings = { windowMs: 60_000, degradedErrorRate: 5, degradedQueueDepth: 100, emergencyErrorRate: 25 };

function monitor() {
  const clock = new ManualClock();
  const changes: string[] = [];
  const m = new DegradationMonitor(settings, clock, (from, to) => changes.push(`${from}->${to}`));
  return { m, clock, changes };
}

/** `n` requests spread over `ms`, `errorPercent` of them failed, the mode checked after each. */
function traffic(ctx: ReturnType<typeof monitor>, n: number, errorPercent: number, ms: number, queue = 0) {
  let errors = 0;
  for (let i = 1; i <= n; i++) {
    ctx.clock.advance(ms / n);
    const failed = Math.floor((i * errorPercent) / 100) > errors;
    if (failed) errors++;
    ctx.m.record(failed);
    ctx.m.mode(queue);
  }
}

describe('degradation modes', () => {
  it('switches at the configured thresholds', () => {
    const ctx = monitor();
    traffic(ctx, 200, 4, 10_000);
    assert.equal(ctx.m.name, 'normal', '4% < 5%');
    traffic(ctx, 400, 6, 10_000);
    assert.equal(ctx.m.name, 'degraded', 'the window reached 5%');
    traffic(ctx, 600, 50, 5_000);
    assert.equal(ctx.m.name, 'emergency', 'the window reached 25% (332 of 1,200)');
    assert.deepEqual(ctx.changes, ['normal->degraded', 'degraded->emergency']);
  });

  it('enters degraded on queue depth alone', () => {
    const ctx = monitor();
    assert.equal(ctx.m.mode(99), 'normal');
    assert.equal(ctx.m.mode(100), 'degraded');
  });

  it('does not flap under a steady error rate at the threshold', () => {
    const ctx = monitor();
    // Ten minutes of traffic whose error rate wobbles around 5% (4% and 6% alternating every 5 s).
    for (let i = 0; i < 120; i++) traffic(ctx, 50, i % 2 === 0 ? 6 : 4, 5_000);
    assert.deepEqual(ctx.changes, ['normal->degraded']);
  });

  it('recovers once the error rate falls below half the threshold and the mode has been held', () => {
    const ctx = monitor();
    traffic(ctx, 200, 30, 10_000);
    assert.equal(ctx.m.name, 'emergency');
    traffic(ctx, 1000, 0, 70_000); // a clean window
    assert.equal(ctx.m.name, 'normal');
    assert.deepEqual(ctx.changes, ['normal->emergency', 'emergency->degraded', 'degraded->normal'], 'it steps down through degraded');
  });

  it('ignores the error rate of a window with too few requests', () => {
    const ctx = monitor();
    traffic(ctx, 10, 100, 1_000);
    assert.equal(ctx.m.name, 'normal');
  });
});
