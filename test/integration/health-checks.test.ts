/**
 * Active health checks on a real sidecar against model servers on 127.0.0.1
 * that answer /health as llama.cpp and vLLM do: an endpoint that says it has
 * no free slot, or that it is still loading, takes no traffic until it says
 * otherwise, while a healthy endpoint serves.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it, type TestContext } from 'node:test';
import { until } from '../support/until.js';
import { chat, post, startMock, startRig, type Rig } from '../support/harness.js';

/** A model server whose /health says what `health()` returns, and which counts the completions it serves. */
async function modelServer(t: TestContext, health: () => { status: number; body: string }) {
  const served = { completions: 0 };
  const server = createServer((req, res) => {
    if (req.url === '/health') {
      const h = health();
      res.writeHead(h.status, { 'content-type': 'application/json' }).end(h.body);
      return;
    }
    served.completions++;
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ id: 'c', object: 'chat.completion', model: 'm', choices: [{ index: 0, message: { role: 'assistant', content: 'from the model server' }, finish_reason: 'stop' }] })));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => new Promise((r) => server.close(r)));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, served };
}

const health = async (rig: Rig) => ((await (await fetch(`${rig.sidecar.adminUrl}/status`)).json()) as { upstreams: { endpoints: { origin: string; health?: string }[] }[] }).upstreams[0]!.endpoints.map((e) => e.health);


describe('active health checks', () => {
  it('keep traffic off a llama.cpp server that reports no free slot while another endpoint serves', async (t) => {
    let slotsIdle = 0;
    const llama = await modelServer(t, () => (slotsIdle === 0 ? { status: 503, body: '{"status":"no slot available","slots_idle":0,"slots_processing":4}' } : { status: 200, body: `{"status":"ok","slots_idle":${slotsIdle},"slots_processing":1}` }));
    const other = await startMock(t);
    const rig = await startRig(t, {
      upstreams: [{ name: 'local', endpoints: [{ url: llama.url }, { url: other.url }], loadBalancing: 'round-robin', healthCheck: { path: '/health', interval: '50ms', unhealthyThreshold: 1 } }],
    });
    await until('both endpoints probed', () => health(rig), (h) => h[0] === 'unhealthy' && h[1] === 'healthy');
    for (let i = 0; i < 20; i++) assert.equal((await post(rig.url('/local/v1/chat/completions'), chat())).status, 200);
    assert.equal(llama.served.completions, 0, 'the full server took no traffic');
    assert.equal(other.requests.filter((r) => r.path.endsWith('/chat/completions')).length, 20);
    assert.equal(await rig.metric('breakwater_endpoint_healthy', { endpoint: '0' }), 0);

    slotsIdle = 2;
    await until('the llama.cpp server healthy again', () => health(rig), (h) => h[0] === 'healthy');
    for (let i = 0; i < 20; i++) assert.equal((await post(rig.url('/local/v1/chat/completions'), chat())).status, 200);
    assert.ok(llama.served.completions >= 5, `with a free slot it takes its share (${llama.served.completions} of 20)`);
    assert.ok(rig.logs.some((l) => l.msg === 'endpoint health changed' && l.status === 'healthy' && l.endpoint === llama.url));
  });

  it('send a vLLM server that answers 503 on /health while loading no traffic until it is healthy', async (t) => {
    let loaded = false;
    const vllm = await modelServer(t, () => (loaded ? { status: 200, body: '' } : { status: 503, body: '' }));
    const rig = await startRig(t, { upstreams: [{ name: 'vllm', url: vllm.url, healthCheck: { path: '/health', interval: '50ms' } }] });
    await until('the first probe', () => health(rig), (h) => h[0] === 'unhealthy');
    const refused = await post(rig.url('/vllm/v1/chat/completions'), chat());
    assert.equal(refused.status, 503);
    assert.equal(refused.json().error.code, 'circuit_open');
    assert.match(refused.json().error.message, /no endpoint of upstream vllm is healthy/);
    assert.equal(vllm.served.completions, 0);

    loaded = true;
    await until('healthy', () => health(rig), (h) => h[0] === 'healthy');
    assert.equal((await post(rig.url('/vllm/v1/chat/completions'), chat())).status, 200);
    assert.equal(vllm.served.completions, 1);
  });
});
