/** Several endpoints per upstream: balancing, and a failing endpoint ejected by its own breaker while the others serve. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { chat, post, startMock, startRig } from '../support/harness.js';

describe('endpoints and load balancing', () => {
  it('spreads requests by weight', async (t) => {
    const a = await startMock(t);
    const b = await startMock(t);
    const rig = await startRig(t, { upstreams: [{ name: 'pool', endpoints: [{ url: a.url, weight: 3 }, { url: b.url, weight: 1 }], loadBalancing: 'weighted' }] });
    for (let i = 0; i < 40; i++) assert.equal((await post(rig.url('/pool/v1/chat/completions'), chat())).status, 200);
    assert.deepEqual([a.requests.length, b.requests.length], [30, 10]);
  });

  it('takes turns with round-robin, and keeps a base path per endpoint', async (t) => {
    const a = await startMock(t);
    const b = await startMock(t);
    const rig = await startRig(t, { upstreams: [{ name: 'pool', endpoints: [{ url: `${a.url}/east` }, { url: `${b.url}/west` }], loadBalancing: 'round-robin' }] });
    for (let i = 0; i < 6; i++) await post(rig.url('/pool/v1/chat/completions'), chat());
    assert.deepEqual([a.requests.length, b.requests.length], [3, 3]);
    assert.equal(a.requests[0]!.path, '/east/v1/chat/completions');
    assert.equal(b.requests[0]!.path, '/west/v1/chat/completions');
  });

  it('prefers the endpoint with fewer requests in flight', async (t) => {
    const a = await startMock(t);
    const b = await startMock(t);
    a.enqueue({ kind: 'ok', delayMs: 600 });
    const rig = await startRig(t, { upstreams: [{ name: 'pool', endpoints: [{ url: a.url }, { url: b.url }], loadBalancing: 'least-outstanding' }] });
    const long = post(rig.url('/pool/v1/chat/completions'), chat()); // both idle: the first endpoint takes it
    await new Promise((r) => setTimeout(r, 50));
    for (let i = 0; i < 4; i++) await post(rig.url('/pool/v1/chat/completions'), chat());
    await long;
    // Round-robin would have sent two of the four to the busy endpoint.
    assert.deepEqual([a.requests.length, b.requests.length], [1, 4]);
  });

  it('ejects a failing endpoint with its own breaker: it takes no more traffic while the other serves everything', async (t) => {
    const broken = await startMock(t);
    broken.defaultBehavior = { kind: 'status', status: 500 };
    const healthy = await startMock(t);
    const rig = await startRig(t, {
      upstreams: [{ name: 'pool', endpoints: [{ url: broken.url }, { url: healthy.url }], loadBalancing: 'round-robin', retry: { attempts: 2, backoff: { base: '1ms', max: '2ms' } }, circuitBreaker: { consecutiveFailures: 2, openFor: '1m' } }],
    });
    const statuses: number[] = [];
    for (let i = 0; i < 30; i++) statuses.push((await post(rig.url('/pool/v1/chat/completions'), chat())).status);
    assert.ok(statuses.every((s) => s === 200), 'a retry goes to the other endpoint');
    assert.equal(broken.requests.length, 2, 'two failures opened its breaker; after that it got nothing');
    assert.equal(healthy.requests.length, 30);
    const status = (await (await fetch(`${rig.sidecar.adminUrl}/status`)).json()) as { upstreams: { breakers: { scope: string; state: string }[] }[] };
    assert.deepEqual(status.upstreams[0]!.breakers.map((b) => [b.scope, b.state]).sort(), [['gpt-test@0', 'open'], ['gpt-test@1', 'closed']]);
  });
});
