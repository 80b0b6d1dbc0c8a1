import assert from 'node:assert/strict';
import { SidecarState } from '../../sidecar/sidecar-state.js';
import { compile, metrics } from '../support/layer-kit.js';
import { describe, it } from 'node:test';
import { ManualClock } from '../../sidecar/resilience/clock.js';
import { DegradationMonitor, type DegradationSettings } from '../../sidecar/resilience/degradation.js';
import { AdaptiveLimit } from '../../sidecar/resilience/adaptive-limit.js';
import { Bulkhead } from '../../sidecar/resilience/bulkhead.js';
import { adaptLimits, queuePressure } from '../../sidecar/proxy/upstream/endpoint-limits.js';

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

describe('the queue depth degraded mode counts (queuePressure)', () => {
  /** An upstream with one endpoint and an adaptive limit of [4, 64] from 8, and `waiting` requests in its queue. */
  function upstream(waiting: number) {
    const clock = new ManualClock();
    const bulkhead = new Bulkhead({ maxConcurrent: 8, maxQueue: 1024, queueTimeoutMs: 5000 }, [{ name: 'normal', reservedPercent: 0, maxSharePercent: 100 }], clock);
    const endpoints: { limit?: AdaptiveLimit }[] = [{}];
    adaptLimits(endpoints, bulkhead, { min: 4, max: 64, initial: 8 }, clock, () => {});
    for (let i = 0; i < 8; i++) bulkhead.tryAcquire(0);
    for (let i = 0; i < waiting; i++) bulkhead.acquire(0).catch(() => {});
    return { clock, bulkhead, endpoints, u: { bulkhead, endpoints, limitBounds: { max: 64 } } };
  }

  it('does not count a burst waiting behind an adaptive limit still opening, and counts it once the provider refused or the limit is at its max', () => {
    const { u, endpoints, clock } = upstream(200);
    assert.equal(queuePressure(u), 0, 'slow start: a burst on its way in');
    clock.advance(1);
    endpoints[0]!.limit!.refused(clock.now(), 7, 8);
    assert.equal(queuePressure(u), 200, 'the provider refused: the queue is overload');
    const atMax = upstream(200);
    for (let i = 0; i < 200 && atMax.bulkhead.limit < 64; i++) atMax.endpoints[0]!.limit!.served(atMax.clock.now(), atMax.bulkhead.limit);
    assert.equal(atMax.bulkhead.limit, 64);
    assert.ok(queuePressure(atMax.u) > 0, 'at its max, the limit cannot open further');
  });

  it('does not count it after a 429 at idle (the endpoint held under a quarter of its limit), nor while another endpoint still opens', () => {
    const { u, endpoints, clock } = upstream(200);
    clock.advance(1);
    endpoints[0]!.limit!.refused(clock.now(), 0, 1, 86_400_000, 1);
    assert.equal(endpoints[0]!.limit!.phase, 'slow-start');
    assert.equal(queuePressure(u), 0, 'a quota\'s 429 says nothing of the burst behind it');
    for (let i = 0; i < 40; i++) endpoints[0]!.limit!.refused(clock.now() + 1 + i, 0, 1, 1000, 1); // a quota's 429s, one request at a time
    assert.equal(endpoints[0]!.limit!.phase, 'slow-start', 'walked to its min, still opening');
    assert.equal(queuePressure(u), 0);
    const refusing = upstream(0).endpoints[0]!;
    refusing.limit!.refused(1, 7, 8);
    assert.equal(refusing.limit!.phase, 'probing');
    const opening = upstream(0).endpoints[0]!;
    assert.equal(queuePressure({ ...u, endpoints: [refusing, opening] }), 0, 'a small endpoint refused; the other still opens');
  });

  it('counts every request behind a fixed limit, as before', () => {
    const clock = new ManualClock();
    const bulkhead = new Bulkhead({ maxConcurrent: 1, maxQueue: 1024, queueTimeoutMs: 5000 }, [{ name: 'normal', reservedPercent: 0, maxSharePercent: 100 }], clock);
    bulkhead.tryAcquire(0);
    for (let i = 0; i < 150; i++) bulkhead.acquire(0).catch(() => {});
    assert.equal(queuePressure({ bulkhead, endpoints: [{}], limitBounds: { max: 1 } }), 150);
  });
});

describe('the mode an idle sidecar shows', () => {
  it('is evaluated when read, not only per request: an idle pod leaves emergency once its window has passed', () => {
    const clock = new ManualClock();
    const state = new SidecarState(clock, metrics, () => {});
    state.apply(compile({ upstreams: [{ name: 'p', url: 'http://127.0.0.1:9' }], degradation: { window: '10s', emergency: { errorRate: 50 } } }));
    for (let i = 0; i < 30; i++) state.degradation.record(true);
    assert.equal(state.mode(), 'emergency');
    clock.advance(11_000); // no request since
    assert.equal(state.mode(), 'normal', 'the window holds nothing now');
    assert.equal(state.degradation.name, 'normal');
  });
});
