/** The active health check's state machine on a ManualClock, and what counts as a healthy answer from each kind of model server. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { healthyAnswer, healthyPrefix } from '../../sidecar/proxy/upstream/health-probe.js';
import { HealthCheck, type HealthStatus } from '../../sidecar/resilience/health-check.js';
import { ManualClock } from '../../sidecar/resilience/clock.js';

const settle = () => new Promise((r) => setImmediate(r));
const settings = { intervalMs: 1000, timeoutMs: 200, healthyThreshold: 2, unhealthyThreshold: 3 };

/** A probe the test answers: each call waits for `answer` (or the abort). */
function scripted() {
  const pending: { resolve(ok: boolean): void; signal: AbortSignal }[] = [];
  const probe = (signal: AbortSignal) =>
    new Promise<boolean>((resolve, reject) => {
      pending.push({ resolve, signal });
      signal.addEventListener('abort', () => reject(new Error('aborted')));
    });
  return { probe, pending };
}

describe('health check', () => {
  it('is unknown until the first probe answers, then changes only after enough results in a row', async () => {
    const clock = new ManualClock();
    const { probe, pending } = scripted();
    const changes: HealthStatus[] = [];
    const check = new HealthCheck(settings, clock, probe, (s) => changes.push(s));
    check.start();
    assert.equal(check.status, 'unknown');
    const answer = async (ok: boolean) => {
      pending.at(-1)!.resolve(ok);
      await settle();
      clock.advance(settings.intervalMs);
      await settle();
    };
    await answer(true);
    assert.equal(check.status, 'healthy', 'the first answer decides');
    await answer(false);
    await answer(false);
    assert.equal(check.status, 'healthy', 'two failures are fewer than unhealthyThreshold');
    await answer(true); // the run is broken
    for (let i = 0; i < 3; i++) await answer(false);
    assert.equal(check.status, 'unhealthy');
    await answer(true);
    assert.equal(check.status, 'unhealthy');
    await answer(true);
    assert.equal(check.status, 'healthy');
    assert.deepEqual(changes, ['healthy', 'unhealthy', 'healthy']);
    check.stop();
  });

  it('never has more than one probe in flight: a hung probe is aborted at the timeout, counts as failed, and the next waits a whole interval', async () => {
    const clock = new ManualClock();
    const { probe, pending } = scripted();
    const check = new HealthCheck({ ...settings, unhealthyThreshold: 1 }, clock, probe);
    check.start();
    clock.advance(5000); // the probe hangs: only its timeout fires
    await settle();
    assert.equal(pending.length, 1);
    assert.equal(pending[0]!.signal.aborted, true);
    assert.equal(check.status, 'unhealthy');
    clock.advance(settings.intervalMs - 1);
    await settle();
    assert.equal(pending.length, 1);
    clock.advance(1);
    await settle();
    assert.equal(pending.length, 2);
    check.stop();
    pending[1]!.resolve(true);
    clock.advance(10 * settings.intervalMs);
    await settle();
    assert.equal(pending.length, 2, 'stopped: no more probes');
    assert.equal(check.status, 'unhealthy', 'and no more changes');
  });

  it('starts from a carried status, which then changes only as the thresholds say', async () => {
    const clock = new ManualClock();
    const { probe, pending } = scripted();
    const changes: HealthStatus[] = [];
    const check = new HealthCheck(settings, clock, probe, (s) => changes.push(s), 'healthy');
    assert.equal(check.status, 'healthy', 'before any probe of its own has answered');
    check.start();
    for (let i = 0; i < settings.unhealthyThreshold; i++) {
      assert.equal(check.status, 'healthy');
      pending.at(-1)!.resolve(false);
      await settle();
      clock.advance(settings.intervalMs);
      await settle();
    }
    assert.equal(check.status, 'unhealthy');
    assert.deepEqual(changes, ['unhealthy']);
    check.stop();
  });
});

describe('what a healthy answer is', () => {
  const cases: [string, number, string, boolean][] = [
    ['vLLM, ready', 200, '', true],
    ['vLLM, loading', 503, '', false],
    ['TGI, ready', 200, '', true],
    ['Ollama, GET /', 200, 'Ollama is running', true],
    ['llama.cpp, ready', 200, '{"status":"ok"}', true],
    ['llama.cpp, ready with slots', 200, '{"status":"ok","slots_idle":2,"slots_processing":2}', true],
    ['llama.cpp, no free slot (old servers)', 503, '{"status":"no slot available","slots_idle":0,"slots_processing":4}', false],
    ['llama.cpp, no free slot with a 200', 200, '{"status":"ok","slots_idle":0,"slots_processing":4}', false],
    ['llama.cpp, loading the model', 503, '{"error":{"code":503,"message":"Loading model","type":"unavailable_error"}}', false],
    ['a 200 that says it is loading', 200, '{"status":"loading"}', false],
    ['a redirect', 302, '', false],
    ['a 404 (wrong path)', 404, 'not found', false],
  ];
  for (const [name, status, body, healthy] of cases) {
    it(`${name}: ${healthy ? 'healthy' : 'unhealthy'}`, () => assert.equal(healthyAnswer(status, body), healthy));
  }
});

describe('what the first bytes of an answer too long to read whole say', () => {
  const padding = 'x'.repeat(5000);
  const cases: [string, number, string, boolean][] = [
    ['llama.cpp, ready, with long details', 200, `{"status":"ok","slots_idle":2,"detail":"${padding}`, true],
    ['llama.cpp, ready, pretty-printed', 200, `{\n  "status": "ok",\n  "detail": "${padding}`, true],
    ['a 200 whose status says error', 200, `{"status":"error","detail":"${padding}`, false],
    ['a 200 whose status says loading, escaped quotes before it ends', 200, `{"status":"model \\"m\\" loading","detail":"${padding}`, false],
    ['llama.cpp, no free slot', 200, `{"status":"ok","slots_idle":0,"detail":"${padding}`, false],
    ['a status nested before the answer\'s own', 200, `{"checks":[{"status":"ok"}],"status":"error","detail":"${padding}`, false],
    ['JSON that does not open with its status', 200, `{"detail":"${padding}`, false],
    ['a long plain-text 2xx', 200, `<html>${padding}`, false],
    ['a 503 that opens with a good status', 503, `{"status":"ok","detail":"${padding}`, false],
  ];
  for (const [name, status, prefix, healthy] of cases) {
    it(`${name}: ${healthy ? 'healthy' : 'unhealthy'}`, () => assert.equal(healthyPrefix(status, prefix.slice(0, 4096)), healthy));
  }
});
