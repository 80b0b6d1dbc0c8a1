/**
 * WebSockets (the Realtime API) through a real sidecar, with the `ws`
 * client an app's SDK uses: messages both ways through the tunnel, the
 * policy's credential (never the app's) at the upstream, an upgrade the
 * policy forbids refused, failed handshakes opening the breaker, and a drain
 * that closes the tunnel with 1001.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it, type TestContext } from 'node:test';
import WebSocket, { WebSocketServer } from 'ws';
import { stringify } from 'yaml';
import { spawnSidecar } from '../support/sidecar-process.js';
import { until } from '../support/until.js';

/** A Realtime-like upstream: echoes each message back as `echo: <message>`, and records each handshake's headers. */
async function realtimeUpstream(t: TestContext) {
  const handshakes: { url: string; headers: IncomingHttpHeaders }[] = [];
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  wss.on('connection', (socket, req) => {
    handshakes.push({ url: req.url ?? '', headers: req.headers });
    socket.send(JSON.stringify({ type: 'session.created' }));
    socket.on('message', (data) => socket.send(`echo: ${data.toString()}`));
  });
  await new Promise((resolve) => wss.once('listening', resolve));
  t.after(() => new Promise((resolve) => wss.close(resolve)));
  return { url: `http://127.0.0.1:${(wss.address() as AddressInfo).port}`, handshakes, wss };
}

function connect(url: string, headers: Record<string, string> = {}, protocols: string[] = []): Promise<{ ws: WebSocket; messages: string[]; closed: Promise<number> }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, { headers });
    const messages: string[] = [];
    const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
    ws.on('message', (data) => messages.push(data.toString()));
    ws.once('open', () => resolve({ ws, messages, closed }));
    ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`status ${res.statusCode}`), { status: res.statusCode })));
    ws.once('error', reject);
  });
}

describe('WebSockets through the sidecar', { concurrency: true }, () => {
  it('tunnels messages both ways to the addressed upstream, with the policy\'s credential in place of the app\'s', async (t) => {
    const upstream = await realtimeUpstream(t);
    process.env.BW_TEST_REALTIME_KEY = 'sk-policy-realtime';
    t.after(() => delete process.env.BW_TEST_REALTIME_KEY);
    const sidecar = await spawnSidecar(t, stringify({ upstreams: [{ name: 'openai', url: upstream.url, auth: { env: 'BW_TEST_REALTIME_KEY' } }] }));
    const wsUrl = `${sidecar.dataUrl.replace('http', 'ws')}/openai/v1/realtime?model=gpt-realtime`;
    // A browser app's key as a subprotocol, as OpenAI's Realtime API accepts it: the policy's credential goes instead.
    const { ws, messages } = await connect(wsUrl, { authorization: 'Bearer sk-app', 'openai-beta': 'realtime=v1' }, ['realtime', 'openai-insecure-api-key.sk-app']);
    ws.send(JSON.stringify({ type: 'session.update' }));
    ws.send('x'.repeat(70_000)); // a frame with a 64-bit length
    await until('both answers came back', () => messages.length >= 3);
    assert.equal(messages[0], '{"type":"session.created"}');
    assert.equal(messages[1], 'echo: {"type":"session.update"}');
    assert.equal(messages[2], `echo: ${'x'.repeat(70_000)}`);
    assert.equal(upstream.handshakes[0]!.url, '/v1/realtime?model=gpt-realtime');
    assert.equal(upstream.handshakes[0]!.headers.authorization, 'Bearer sk-policy-realtime');
    assert.equal(upstream.handshakes[0]!.headers['openai-beta'], 'realtime=v1');
    assert.equal(upstream.handshakes[0]!.headers['sec-websocket-protocol'], 'realtime', 'the app\'s key offered as a subprotocol stays home');
    assert.equal(ws.protocol, 'realtime');
    const metrics = await (await fetch(`${sidecar.adminUrl}/metrics`)).text();
    assert.match(metrics, /breakwater_websocket_tunnels\{upstream="openai"\} 1/);
    assert.match(metrics, /breakwater_websocket_bytes_total\{upstream="openai",direction="to-upstream"\} \d{5,}/);
    ws.close();
    await until('the tunnel is closed', async () => /breakwater_websocket_tunnels\{upstream="openai"\} 0/.test(await (await fetch(`${sidecar.adminUrl}/metrics`)).text()));
  });

  it('refuses an upgrade the policy forbids with a 403, and one to an unknown upstream with a 404', async (t) => {
    const upstream = await realtimeUpstream(t);
    const sidecar = await spawnSidecar(t, stringify({ upstreams: [{ name: 'openai', url: upstream.url, websockets: false }] }));
    const base = sidecar.dataUrl.replace('http', 'ws');
    await assert.rejects(connect(`${base}/openai/v1/realtime`), (err: { status?: number }) => err.status === 403);
    await assert.rejects(connect(`${base}/nowhere/v1/realtime`), (err: { status?: number }) => err.status === 404);
    assert.equal(upstream.handshakes.length, 0);
  });

  it('counts failed handshakes against the breaker, which opens and answers 503 without a handshake', async (t) => {
    let handshakes = 0;
    const broken = createServer((_req, res) => res.writeHead(500).end());
    broken.on('upgrade', (_req, socket) => {
      handshakes++;
      socket.end('HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n');
    });
    await new Promise<void>((resolve) => broken.listen(0, '127.0.0.1', resolve));
    t.after(() => new Promise((resolve) => broken.close(resolve)));
    const sidecar = await spawnSidecar(t, stringify({ upstreams: [{ name: 'openai', url: `http://127.0.0.1:${(broken.address() as AddressInfo).port}`, circuitBreaker: { consecutiveFailures: 3 } }] }));
    const url = `${sidecar.dataUrl.replace('http', 'ws')}/openai/v1/realtime?model=gpt-realtime`;
    for (let i = 0; i < 3; i++) await assert.rejects(connect(url), (err: { status?: number }) => err.status === 503);
    assert.equal(handshakes, 3);
    await assert.rejects(connect(url), (err: { status?: number }) => err.status === 503);
    assert.equal(handshakes, 3, 'the open breaker answered without a handshake');
  });

  it('an app that leaves during the handshake costs the upstream nothing: the breaker does not count it', async (t) => {
    const slow = new WebSocketServer({ noServer: true });
    const server = createServer();
    server.on('upgrade', (req, socket, head) => setTimeout(() => !socket.destroyed && slow.handleUpgrade(req, socket, head, (ws) => ws.send('hello')), 400));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const sockets = new Set<import('node:net').Socket>();
    server.on('upgrade', (_req, socket: import('node:net').Socket) => sockets.add(socket));
    t.after(() => {
      for (const socket of sockets) socket.destroy();
      server.close();
    });
    const sidecar = await spawnSidecar(t, stringify({ upstreams: [{ name: 'openai', url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, circuitBreaker: { consecutiveFailures: 1 } }] }));
    const url = `${sidecar.dataUrl.replace('http', 'ws')}/openai/v1/realtime`;
    for (let i = 0; i < 3; i++) {
      const leaving = new WebSocket(url);
      leaving.on('error', () => {});
      await new Promise((r) => setTimeout(r, 100));
      leaving.terminate();
    }
    const { ws, messages } = await connect(url);
    await until('the tunnel works: the breaker stayed closed', () => messages.length === 1);
    const status = (await (await fetch(`${sidecar.adminUrl}/status`)).json()) as { upstreams: { bulkhead: { inFlight: number } }[] };
    assert.equal(status.upstreams[0]!.bulkhead.inFlight, 1, 'only the open tunnel holds a slot');
    ws.terminate();
  });

  it('closes an open tunnel with 1001 (going away) when the sidecar drains', async (t) => {
    const upstream = await realtimeUpstream(t);
    const upstreamClosed = new Promise<number>((resolve) => upstream.wss.on('connection', (socket) => socket.once('close', (code) => resolve(code))));
    const sidecar = await spawnSidecar(t, stringify({ upstreams: [{ name: 'openai', url: upstream.url }], shutdown: { drainTimeout: '1s' } }));
    const { closed, messages } = await connect(`${sidecar.dataUrl.replace('http', 'ws')}/openai/v1/realtime`);
    await until('the session started', () => messages.length === 1);
    const started = Date.now();
    sidecar.child.kill('SIGTERM');
    assert.equal(await closed, 1001, 'the app was told the sidecar is going away');
    assert.equal(await upstreamClosed, 1001, 'and so was the upstream');
    assert.ok(Date.now() - started >= 900, 'at the drain timeout, not before');
    assert.equal(await sidecar.exited, 0);
  });
});
