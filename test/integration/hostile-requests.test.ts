/**
 * Requests an app (or whoever reaches the data port) shapes to hurt: paths
 * that climb out of the upstream's base path, bodies nested too deep to
 * write back, and a failure inside the sidecar itself. Each gets a clear
 * answer, and the counters still add up.
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { describe, it } from 'node:test';
import { chat, post, startMock, startRig } from '../support/harness.js';
import { freePort } from '../support/ports.js';

/** A POST with the path exactly as given (fetch would resolve dot segments before sending). */
function rawPost(base: string, path: string, body: string): Promise<{ status: number; code?: string }> {
  return new Promise((resolve, reject) => {
    const { hostname, port } = new URL(base);
    const req = request({ hostname, port, path, method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode!, code: (JSON.parse(text) as { error?: { code?: string } }).error?.code }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('hostile requests', () => {
  it('refuses paths with . or .. segments, also percent-encoded, and forwards nothing', async (t) => {
    const mock = await startMock(t);
    const rig = await startRig(t, { upstreams: [{ name: 'primary', url: `${mock.url}/base` }] });
    for (const path of ['/primary/v1/../../admin', '/primary/%2e%2e/admin', '/primary/v1/%2E%2e', '/primary/./v1/chat/completions', '/primary/..?x=1']) {
      const r = await rawPost(rig.sidecar.dataUrl, path, chat());
      assert.equal(r.status, 400, path);
      assert.equal(r.code, 'invalid_request', path);
    }
    assert.equal(mock.requests.length, 0);
    assert.equal((await rawPost(rig.sidecar.dataUrl, '/primary/v1/.well-known/x..y', chat())).status, 200, 'dots inside a segment are fine');
    assert.equal(mock.requests[0]!.path, '/base/v1/.well-known/x..y');
  });

  it('answers a body nested too deep to write back, in degraded mode, with the body as sent', async (t) => {
    const mock = await startMock(t);
    const rig = await startRig(t, {
      upstreams: [
        { name: 'primary', url: mock.url },
        { name: 'broken', url: `http://127.0.0.1:${await freePort()}`, retry: { attempts: 1 }, circuitBreaker: { consecutiveFailures: 0, failureRate: { threshold: 0 } } },
      ],
      degradation: { degraded: { errorRate: 5, maxTokens: 16 } },
    });
    for (let i = 0; i < 25; i++) await post(rig.url('/broken/v1/chat/completions'), chat());
    const depth = 50_000;
    const body = `{"model":"m","messages":[{"role":"user","content":${'['.repeat(depth)}${']'.repeat(depth)}}]}`;
    const r = await post(rig.url('/primary/v1/chat/completions'), body);
    assert.equal(r.headers.get('x-breakwater-mode'), 'degraded');
    assert.equal(r.status, 200);
  });

  it('counts and logs a request that fails inside the sidecar', async (t) => {
    const mock = await startMock(t);
    const rig = await startRig(t, { upstreams: [{ name: 'primary', url: mock.url }] });
    const upstream = rig.sidecar.state.upstream('primary')!;
    // A bug inside the pipeline, simulated: the upstream's bulkhead throws.
    upstream.bulkhead.tryAcquire = () => {
      throw new Error('simulated bug');
    };
    const r = await post(rig.url('/primary/v1/chat/completions'), chat());
    assert.equal(r.status, 502);
    assert.equal(await rig.metric('breakwater_requests_total', { outcome: 'local_error' }), 1);
    assert.ok(rig.logs.some((l) => l.msg === 'request' && l.status === 502), 'one request line');
  });
});
