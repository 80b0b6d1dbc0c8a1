/**
 * Active health checks on a real sidecar against model servers on 127.0.0.1
 * that answer /health as llama.cpp and vLLM do: an endpoint that says it has
 * no free slot, or that it is still loading, takes no traffic until it says
 * otherwise, while a healthy endpoint serves. What probes learnt survives a
 * policy reload, the sidecar is not ready before its first probes have
 * answered, and a long answer is judged by what it says.
 */
import assert from 'node:assert/strict';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it, type TestContext } from 'node:test';
import { stringify } from 'yaml';
import { loadPolicyText } from '../../sidecar/config/policy-file.js';
import { until } from '../support/until.js';
import { chat, post, startMock, startRig, type Rig } from '../support/harness.js';

/** What a model server's health path answers; `hold` keeps the probe waiting until the test releases it (or ends). */
type HealthAnswer = { status: number; body: string } | 'hold';

/**
 * A model server whose health path (`/health`, or any path `health(path)`
 * answers for) says what `health()` returns, and which counts the
 * completions it serves.
 */
async function modelServer(t: TestContext, health: (path: string) => HealthAnswer | undefined) {
  const served = { completions: 0 };
  const held: ServerResponse[] = [];
  const server = createServer((req, res) => {
    const h = req.method === 'GET' ? health(req.url ?? '') : undefined;
    if (h === 'hold') return void held.push(res);
    if (h) return void res.writeHead(h.status, { 'content-type': 'application/json' }).end(h.body);
    served.completions++;
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ id: 'c', object: 'chat.completion', model: 'm', choices: [{ index: 0, message: { role: 'assistant', content: 'from the model server' }, finish_reason: 'stop' }] })));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => {
    server.closeAllConnections(); // held probes too
    return new Promise((r) => server.close(r));
  });
  /** Answers the probes held so far. */
  const release = (answer: { status: number; body: string }) => held.splice(0).forEach((res) => res.writeHead(answer.status, { 'content-type': 'application/json' }).end(answer.body));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, served, release };
}

/** A health path that answers as `answer()` says, and nothing else. */
const at = (path: string, answer: () => HealthAnswer) => (asked: string) => (asked === path ? answer() : undefined);
const ok = { status: 200, body: '{"status":"ok"}' };

/** Applies `spec` as a reloaded policy file would be. */
function reload(rig: Rig, spec: object): void {
  const loaded = loadPolicyText(stringify({ shutdown: { drainTimeout: '2s' }, ...spec }), 'reloaded policy');
  if (!loaded.ok) throw new Error(loaded.error);
  const applied = rig.sidecar.apply(loaded.config);
  assert.ok(applied.ok, applied.ok ? '' : applied.error);
}

const readyz = async (rig: Rig) => {
  const res = await fetch(`${rig.sidecar.adminUrl}/readyz`);
  return { status: res.status, text: await res.text() };
};
const health = async (rig: Rig) => ((await (await fetch(`${rig.sidecar.adminUrl}/status`)).json()) as { upstreams: { endpoints: { origin: string; health?: string }[] }[] }).upstreams[0]!.endpoints.map((e) => e.health);


describe('active health checks', () => {
  it('keep traffic off a llama.cpp server that reports no free slot while another endpoint serves', async (t) => {
    let slotsIdle = 0;
    const llama = await modelServer(t, at('/health', () => (slotsIdle === 0 ? { status: 503, body: '{"status":"no slot available","slots_idle":0,"slots_processing":4}' } : { status: 200, body: `{"status":"ok","slots_idle":${slotsIdle},"slots_processing":1}` })));
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
    const vllm = await modelServer(t, at('/health', () => (loaded ? { status: 200, body: '' } : { status: 503, body: '' })));
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

describe('health across reloads and at start', () => {
  it('keeps an endpoint healthy across a reload that changes another setting of its upstream', async (t) => {
    let answer: HealthAnswer = ok;
    const llama = await modelServer(t, at('/health', () => answer));
    const spec = (attempts: number) => ({ upstreams: [{ name: 'local', url: llama.url, retry: { attempts }, healthCheck: { path: '/health', interval: '50ms', timeout: '10s' } }] });
    const rig = await startRig(t, spec(3));
    await until('the first probe', () => health(rig), (h) => h[0] === 'healthy');

    answer = 'hold'; // from now on no probe answers: only what was learnt before the reload can say the endpoint is healthy
    reload(rig, spec(2));
    const res = await post(rig.url('/local/v1/chat/completions'), chat());
    assert.equal(res.status, 200, `the first request after the reload: ${res.text}`);
    assert.deepEqual(await health(rig), ['healthy']);
    assert.equal(llama.served.completions, 1);
  });

  it('starts a changed health check fresh without taking the endpoint out of service, and stays ready', async (t) => {
    let ready: HealthAnswer = 'hold';
    const llama = await modelServer(t, (path) => (path === '/health' ? ok : path === '/ready' ? ready : undefined));
    const spec = (path: string) => ({ upstreams: [{ name: 'local', url: llama.url, healthCheck: { path, interval: '50ms', timeout: '10s' } }] });
    const rig = await startRig(t, spec('/health'));
    await until('the first probe', () => health(rig), (h) => h[0] === 'healthy');
    await until('ready', () => readyz(rig), (r) => r.status === 200);

    reload(rig, spec('/ready'));
    assert.deepEqual(await health(rig), ['unknown'], 'what /health said says nothing about /ready');
    const res = await post(rig.url('/local/v1/chat/completions'), chat());
    assert.equal(res.status, 200, `an endpoint not yet probed on its new path still serves: ${res.text}`);
    assert.equal(llama.served.completions, 1);
    assert.equal((await readyz(rig)).status, 200, 'a reload never makes a ready sidecar unready');

    ready = { status: 503, body: '' };
    llama.release(ready);
    await until('the new check says unhealthy', () => health(rig), (h) => h[0] === 'unhealthy');
    assert.equal((await post(rig.url('/local/v1/chat/completions'), chat())).status, 503);
  });

  it('is not ready until the first probes have answered, and then routes by them', async (t) => {
    let answer: HealthAnswer = 'hold';
    const loading = await modelServer(t, at('/health', () => answer));
    const other = await startMock(t);
    const rig = await startRig(t, {
      upstreams: [{ name: 'local', endpoints: [{ url: loading.url }, { url: other.url }], loadBalancing: 'round-robin', healthCheck: { path: '/health', interval: '50ms', timeout: '10s' } }],
    });
    await until('the other endpoint probed', () => health(rig), (h) => h[1] === 'healthy');
    assert.deepEqual(await readyz(rig), { status: 503, text: 'waiting for the first health probes' });
    assert.equal(((await (await fetch(`${rig.sidecar.adminUrl}/status`)).json()) as { ready: boolean }).ready, false);

    answer = { status: 503, body: '' }; // vLLM, still loading its model
    loading.release(answer);
    await until('ready', () => readyz(rig), (r) => r.status === 200);
    assert.deepEqual(await health(rig), ['unhealthy', 'healthy']);
    for (let i = 0; i < 4; i++) assert.equal((await post(rig.url('/local/v1/chat/completions'), chat())).status, 200);
    assert.equal(loading.served.completions, 0, 'the loading server took no traffic');
  });

  it('is ready once a probe that never answers has timed out', async (t) => {
    const hung = await modelServer(t, at('/health', () => 'hold'));
    const rig = await startRig(t, { upstreams: [{ name: 'local', url: hung.url, healthCheck: { path: '/health', interval: '50ms', timeout: '200ms' } }] });
    await until('ready', () => readyz(rig), (r) => r.status === 200);
    assert.deepEqual(await health(rig), ['unhealthy']);
  });
});

describe('a health answer longer than the probe reads', () => {
  it('is judged by the status it opens with, and is unhealthy when that is not where it opens', async (t) => {
    const padding = 'x'.repeat(5000);
    const answers = [
      `{"status":"error","detail":"${padding}"}`,
      `{"status":"ok","slots_idle":2,"detail":"${padding}"}`,
      `{"detail":"${padding}","status":"ok"}`,
      `<html>${padding}</html>`,
    ];
    const servers = await Promise.all(answers.map((body) => modelServer(t, at('/health', () => ({ status: 200, body })))));
    const rig = await startRig(t, {
      upstreams: [{ name: 'local', endpoints: servers.map((s) => ({ url: s.url })), healthCheck: { path: '/health', interval: '50ms' } }],
    });
    const seen = await until('every endpoint probed', () => health(rig), (h) => !h.includes('unknown'));
    assert.deepEqual(seen, ['unhealthy', 'healthy', 'unhealthy', 'unhealthy']);
  });
});
