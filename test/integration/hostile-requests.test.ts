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
import { until } from '../support/until.js';

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
  it('refuses paths with . or .. segments, also percent-encoded or hidden behind an encoded slash or a backslash, and forwards nothing', async (t) => {
    const mock = await startMock(t);
    const rig = await startRig(t, { upstreams: [{ name: 'primary', url: `${mock.url}/base` }] });
    const hidden = ['/primary/v1/..%2f..%2fadmin', '/primary/v1/%2F..%2Fadmin', '/primary/v1\\..\\admin', '/primary/v1/..%5c..%5cadmin', '/primary/v1/chat%00/completions'];
    for (const path of ['/primary/v1/../../admin', '/primary/%2e%2e/admin', '/primary/v1/%2E%2e', '/primary/./v1/chat/completions', '/primary/..?x=1', ...hidden]) {
      const r = await rawPost(rig.sidecar.dataUrl, path, chat());
      assert.equal(r.status, 400, path);
      assert.equal(r.code, 'invalid_request', path);
    }
    assert.equal(mock.requests.length, 0);
    assert.equal((await rawPost(rig.sidecar.dataUrl, '/primary/v1/.well-known/x..y', chat())).status, 200, 'dots inside a segment are fine');
    assert.equal(mock.requests[0]!.path, '/base/v1/.well-known/x..y');
    assert.equal((await rawPost(rig.sidecar.dataUrl, '/primary/v1/chat/completions?next=%2F..%2F', chat())).status, 200, 'the query is the app\'s');
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

  it('counts every request exactly once, also one the app abandons in the middle of its body (cancelled)', async (t) => {
    const mock = await startMock(t);
    const rig = await startRig(t, { upstreams: [{ name: 'primary', url: mock.url }] });
    const { hostname, port } = new URL(rig.sidecar.dataUrl);
    const abandoned = () =>
      new Promise<void>((resolve) => {
        const body = chat();
        const req = request({ hostname, port, path: '/primary/v1/chat/completions', method: 'POST', headers: { 'content-type': 'application/json', 'content-length': String(body.length) } });
        req.on('error', () => resolve());
        req.on('close', () => resolve());
        req.write(body.slice(0, body.length >> 1), () => setTimeout(() => req.destroy(), 20));
      });
    const streamedAbandoned = () =>
      new Promise<void>((resolve) => {
        const req = request({ hostname, port, path: '/primary/v1/chat/completions', method: 'POST', headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' } });
        req.on('error', () => resolve());
        req.on('close', () => resolve());
        req.write('{"model":"gpt-test","messages":[', () => setTimeout(() => req.destroy(), 20));
      });
    const jobs: Promise<unknown>[] = [];
    for (let i = 0; i < 200; i++) jobs.push(i % 20 === 0 ? abandoned() : i % 20 === 10 ? streamedAbandoned() : post(rig.url('/primary/v1/chat/completions'), chat()));
    await Promise.all(jobs);
    await until('every request counted', () => rig.metric('breakwater_requests_total'), (n) => n === 200, 5000).catch(() => undefined);
    assert.equal(await rig.metric('breakwater_requests_total'), 200);
    assert.equal(await rig.metric('breakwater_requests_total', { outcome: 'cancelled' }), 20);
    const status = (await (await fetch(`${rig.sidecar.adminUrl}/status`)).json()) as { bufferedBytes?: number; upstreams: { bulkhead: { inFlight: number } }[] };
    assert.equal(status.upstreams[0]!.bulkhead.inFlight, 0);
    assert.equal(status.bufferedBytes ?? 0, 0, 'no body bytes held');
  });

  it('refuses a compressed body where it must read it (a text endpoint, or guards), and forwards nothing (red team, issue 25)', async (t) => {
    const mock = await startMock(t);
    const rig = await startRig(t, { upstreams: [{ name: 'primary', url: mock.url }, { name: 'guarded', url: mock.url, guards: { maxInputBytes: 2000 } }] });
    const { gzipSync } = await import('node:zlib');
    const body = gzipSync(chat({ messages: [{ role: 'user', content: 'x'.repeat(100_000) }] }));
    for (const path of ['/primary/v1/chat/completions', '/guarded/v1/embeddings']) {
      const r = await fetch(rig.url(path), { method: 'POST', headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' }, body });
      assert.equal(r.status, 415, path);
      assert.equal(((await r.json()) as { error: { code: string } }).error.code, 'invalid_request');
    }
    assert.equal(mock.requests.length, 0);
  });
});

