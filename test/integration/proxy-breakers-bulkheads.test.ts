/** Circuit breakers, bulkheads with priorities, and app disconnects, through real sockets. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { chat, post, startMock, startRig } from '../support/harness.js';
import { freePort } from '../support/ports.js';


describe('proxy: circuit breakers', () => {
  it('opens after consecutive connect failures and then refuses at once with circuit_open and Retry-After', async (t) => {
    const port = await freePort();
    const rig = await startRig(t, {
      upstreams: [{ name: 'primary', url: `http://127.0.0.1:${port}`, retry: { attempts: 1 }, circuitBreaker: { consecutiveFailures: 3, openFor: '30s' } }],
    });
    for (let i = 0; i < 3; i++) {
      const r = await post(rig.url('/primary/v1/chat/completions'), chat());
      assert.equal(r.status, 502);
      assert.equal(r.json().error.code, 'upstream_unavailable');
    }
    const refused = await post(rig.url('/primary/v1/chat/completions'), chat());
    assert.equal(refused.status, 503);
    assert.equal(refused.json().error.code, 'circuit_open');
    assert.equal(refused.headers.get('x-breakwater-attempts'), '0');
    assert.equal(refused.headers.get('retry-after'), '30');
    t.diagnostic(`refused in ${refused.ms.toFixed(2)} ms`);
    assert.equal(await rig.metric('breakwater_upstream_attempts_total'), 3, 'the open breaker kept the fourth request off the upstream');
    assert.equal(await rig.metric('breakwater_circuit_breaker_state', { state: 'open' }), 1);
    assert.equal(await rig.metric('breakwater_circuit_breaker_transitions_total', { to: 'open' }), 1);
    const status = (await (await fetch(`${rig.sidecar.adminUrl}/status`)).json()) as any;
    assert.equal(status.upstreams[0].breakers[0].state, 'open');
    assert.ok(rig.logs.some((l) => l.msg === 'circuit breaker transition' && l.to === 'open'));
  });

  it('counts an overloaded upstream (503, 529) against the breaker by default: probed, not hammered', async (t) => {
    const mock = await startMock(t);
    mock.defaultBehavior = { kind: 'status', status: 529 };
    const rig = await startRig(t, { upstreams: [{ name: 'primary', url: mock.url, retry: { attempts: 1 } }] });
    for (let i = 0; i < 5; i++) assert.equal((await post(rig.url('/primary/v1/chat/completions'), chat())).status, 529, 'the upstream\'s own answer');
    const refused = await post(rig.url('/primary/v1/chat/completions'), chat());
    assert.equal(refused.status, 503);
    assert.equal(refused.json().error.code, 'circuit_open');
    assert.equal(mock.requests.length, 5, 'the sixth request did not reach the upstream');
  });

  it('probes after openFor and closes again once the upstream recovers', async (t) => {
    const mock = await startMock(t);
    mock.defaultBehavior = { kind: 'status', status: 500 };
    const rig = await startRig(t, {
      upstreams: [{ name: 'primary', url: mock.url, retry: { attempts: 1 }, circuitBreaker: { consecutiveFailures: 2, openFor: '200ms', halfOpen: { maxProbes: 1, successesToClose: 1 } } }],
    });
    await post(rig.url('/primary/v1/chat/completions'), chat());
    await post(rig.url('/primary/v1/chat/completions'), chat());
    assert.equal((await post(rig.url('/primary/v1/chat/completions'), chat())).json().error.code, 'circuit_open');
    mock.defaultBehavior = { kind: 'ok' };
    await new Promise((r) => setTimeout(r, 250));
    const probe = await post(rig.url('/primary/v1/chat/completions'), chat());
    assert.equal(probe.status, 200);
    assert.equal(await rig.metric('breakwater_circuit_breaker_state', { state: 'closed' }), 1);
    assert.equal(mock.requests.length, 3);
  });

  it('keeps one breaker per model: a failing model does not block another', async (t) => {
    const mock = await startMock(t);
    const rig = await startRig(t, { upstreams: [{ name: 'primary', url: mock.url, retry: { attempts: 1 }, circuitBreaker: { consecutiveFailures: 2 } }] });
    for (let i = 0; i < 2; i++) {
      mock.enqueue({ kind: 'status', status: 500 });
      await post(rig.url('/primary/v1/chat/completions'), chat({ model: 'big' }));
    }
    assert.equal((await post(rig.url('/primary/v1/chat/completions'), chat({ model: 'big' }))).json().error.code, 'circuit_open');
    assert.equal((await post(rig.url('/primary/v1/chat/completions'), chat({ model: 'small' }))).status, 200);
  });

  it('stops retrying into a breaker that opened meanwhile and passes on the last answer', async (t) => {
    const mock = await startMock(t);
    mock.defaultBehavior = { kind: 'status', status: 502 };
    const rig = await startRig(t, { upstreams: [{ name: 'primary', url: mock.url, retry: { attempts: 5, backoff: { base: '1ms', max: '1ms' } }, circuitBreaker: { consecutiveFailures: 2 } }] });
    const r = await post(rig.url('/primary/v1/chat/completions'), chat());
    assert.equal(r.status, 502);
    assert.equal(r.headers.get('x-breakwater-retry-stopped'), 'circuit-open');
    assert.equal(mock.requests.length, 2);
  });

  it('resets breakers on POST /breakers/reset from loopback', async (t) => {
    const port = await freePort();
    const rig = await startRig(t, { upstreams: [{ name: 'primary', url: `http://127.0.0.1:${port}`, retry: { attempts: 1 }, circuitBreaker: { consecutiveFailures: 1 } }] });
    await post(rig.url('/primary/v1/chat/completions'), chat());
    assert.equal(await rig.metric('breakwater_circuit_breaker_state', { state: 'open' }), 1);
    const reset = await fetch(`${rig.sidecar.adminUrl}/breakers/reset`, { method: 'POST' });
    assert.deepEqual(await reset.json(), { reset: ['primary'] });
    assert.equal(await rig.metric('breakwater_circuit_breaker_state', { state: 'closed' }), 1);
  });
});

describe('proxy: bulkheads', () => {
  it('rejects requests past maxConcurrent + maxQueue with overloaded and Retry-After', async (t) => {
    const mock = await startMock(t);
    mock.defaultBehavior = { kind: 'ok', delayMs: 300 };
    const rig = await startRig(t, { upstreams: [{ name: 'primary', url: mock.url, bulkhead: { maxConcurrent: 1, maxQueue: 1 } }] });
    const results = await Promise.all([1, 2, 3].map(() => post(rig.url('/primary/v1/chat/completions'), chat())));
    const statuses = results.map((r) => r.status).sort();
    assert.deepEqual(statuses, [200, 200, 503]);
    const rejected = results.find((r) => r.status === 503)!;
    assert.equal(rejected.json().error.code, 'overloaded');
    assert.equal(rejected.headers.get('retry-after'), '1');
    assert.equal(await rig.metric('breakwater_bulkhead_rejected_total', { reason: 'queue-full' }), 1);
    assert.equal(mock.requests.length, 2);
  });

  it('admits queued requests in priority order', async (t) => {
    const mock = await startMock(t);
    const rig = await startRig(t, {
      upstreams: [{ name: 'primary', url: mock.url, bulkhead: { maxConcurrent: 1, maxQueue: 10 } }],
      priorities: { default: 'normal', classes: [{ name: 'critical' }, { name: 'normal' }, { name: 'batch' }] },
    });
    mock.enqueue({ kind: 'ok', delayMs: 300 });
    const blocker = post(rig.url('/primary/v1/chat/completions'), chat({ tag: 'blocker' }));
    await new Promise((r) => setTimeout(r, 50));
    const queued: Promise<unknown>[] = [];
    for (const [tag, priority] of [['batch', 'batch'], ['normal', 'normal'], ['critical', 'critical']]) {
      queued.push(post(rig.url('/primary/v1/chat/completions'), chat({ tag }), { 'x-breakwater-priority': priority! }));
      await new Promise((r) => setTimeout(r, 30));
    }
    const status = (await (await fetch(`${rig.sidecar.adminUrl}/status`)).json()) as any;
    assert.equal(status.upstreams[0].bulkhead.queued, 3);
    await Promise.all([blocker, ...queued]);
    assert.deepEqual(mock.requests.map((r) => r.body.tag), ['blocker', 'critical', 'normal', 'batch']);
  });
});

describe('proxy: app disconnects', () => {
  it('cancels the upstream attempt when the app goes away', async (t) => {
    const mock = await startMock(t);
    mock.defaultBehavior = { kind: 'hang' };
    const rig = await startRig(t, { upstreams: [{ name: 'primary', url: mock.url, circuitBreaker: { consecutiveFailures: 1 } }] });
    await assert.rejects(post(rig.url('/primary/v1/chat/completions'), chat(), {}, AbortSignal.timeout(150)));
    for (let i = 0; i < 50 && mock.abandoned === 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(mock.abandoned, 1, 'the upstream saw its request cancelled');
    assert.equal(mock.requests.length, 1, 'no retry for an app that left');
    for (let i = 0; i < 50 && (await rig.metric('breakwater_requests_total', { outcome: 'cancelled' })) === 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(await rig.metric('breakwater_requests_total', { outcome: 'cancelled' }), 1);
    assert.equal(await rig.metric('breakwater_circuit_breaker_state', { state: 'closed' }), 1, 'a cancelled call is not a failure');
  });
});

describe('proxy: client-side rate limits', () => {
  it('survive a request that claims 1e12 tokens and fails: the next one is served, not told to wait for years (red team, issue 25)', async (t) => {
    const mock = await startMock(t);
    const rig = await startRig(t, { upstreams: [{ name: 'primary', url: mock.url, retry: { attempts: 1 }, rateLimit: { tokensPerMinute: 60_000 } }] });
    mock.enqueue({ kind: 'status', status: 400 });
    const huge = await post(rig.url('/primary/v1/chat/completions'), chat({ max_tokens: 1e12 }));
    assert.equal(huge.status, 400, 'the upstream refused it');
    const next = await post(rig.url('/primary/v1/chat/completions'), chat({ max_tokens: 100 }));
    assert.equal(next.status, 200, `then ${next.status} ${next.headers.get('retry-after')}`);
  });
});
