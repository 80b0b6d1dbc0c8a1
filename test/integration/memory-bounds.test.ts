/**
 * The sidecar's memory under attack, measured on a real `breakwater sidecar`
 * process from /proc: its resident memory (RSS) and open file descriptors.
 *
 * - Slow uploads: 100 clients each send 9 MB of a body, 1 MB every 50 ms, and then stall. Bodies
 *   are held against inbound.maxBufferedBytes (64 MiB by default), so RSS
 *   grows by at most that budget plus a fixed slack, not by 900 MB; the rest
 *   are refused with 503 at once.
 * - A 500-stream hold: 500 slow streams open at once cost a bounded amount
 *   each, and everything (slots, bytes, fds) comes back afterwards.
 */
import assert from 'node:assert/strict';
import { request, Agent } from 'node:http';
import { connect, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { stringify } from 'yaml';
import { chat, post, startMock } from '../support/harness.js';
import { MiB, openFds, rssBytes, sampleRss, settle } from '../support/process-usage.js';
import { spawnSidecar } from '../support/sidecar-process.js';

interface Status {
  inbound: { bufferedBodyBytes: number };
  upstreams: { bulkhead: { inFlight: number; queued: number }; endpoints: { inFlight: number }[] }[];
}
const status = async (adminUrl: string) => (await (await fetch(`${adminUrl}/status`)).json()) as Status;

/**
 * RSS the sidecar may gain beyond the bytes it deliberately holds: V8's heap growth, socket state, and
 * buffers already dropped but not yet collected (the refused uploads' bodies are read and dropped, so
 * that the app reads a clear 503 rather than a reset).
 */
const SLACK = 64 * MiB;

describe('memory under attack', () => {
  it('slow uploads: 100 clients sending 9 MB bodies and stalling hold at most inbound.maxBufferedBytes, the rest get 503', async (t) => {
    const mock = await startMock(t);
    const sidecar = await spawnSidecar(t, stringify({ upstreams: [{ name: 'primary', url: mock.url }] }));
    const pid = sidecar.child.pid!;
    assert.equal((await post(`${sidecar.dataUrl}/primary/v1/chat/completions`, chat())).status, 200);
    const baseRss = rssBytes(pid);
    const baseFds = openFds(pid);
    const { port } = new URL(sidecar.dataUrl);
    const body = Buffer.alloc(9_000_000, 0x61);
    const sampler = sampleRss(pid);
    const clients = Array.from({ length: 100 }, (_, i) => upload(Number(port), body, i % 2 === 0));
    t.after(() => clients.forEach((c) => c.socket.destroy()));
    // At most 7 bodies of 9-10 MB fit in 64 MiB: the other 93 are refused, however the uploads interleave.
    await settle(() => clients.filter((c) => c.status !== undefined).length, (n) => n >= 93, 30_000);
    await new Promise((r) => setTimeout(r, 500));
    const held = (await status(sidecar.adminUrl)).inbound.bufferedBodyBytes;
    const peak = sampler.stop();
    const refused = clients.filter((c) => c.status === 503).length;
    t.diagnostic(`RSS ${Math.round(baseRss / MiB)} MiB before, peak ${Math.round(peak / MiB)} MiB (+${Math.round((peak - baseRss) / MiB)} MiB); held ${Math.round(held / MiB)} MiB of bodies; ${refused} of 100 refused`);
    assert.ok(held <= 64 * MiB, 'the budget holds');
    assert.ok(refused >= 93, `${refused} refused`);
    assert.deepEqual(new Set(clients.map((c) => c.status).filter((s) => s !== undefined)), new Set([503]), 'nothing but 503 answered so far');
    assert.ok(peak - baseRss <= 64 * MiB + SLACK, `RSS grew by ${Math.round((peak - baseRss) / MiB)} MiB`);

    for (const c of clients) c.socket.destroy();
    assert.equal((await settle(() => status(sidecar.adminUrl), (s) => s.inbound.bufferedBodyBytes === 0, 5000)).inbound.bufferedBodyBytes, 0, 'bytes given back once the uploaders left');
    const after = await post(`${sidecar.dataUrl}/primary/v1/chat/completions`, chat());
    assert.equal(after.status, 200, 'a normal request is served afterwards');
    const fds = await settle(() => openFds(pid), (n) => n <= baseFds, 5000);
    assert.ok(fds <= baseFds, `${fds} fds open, ${baseFds} before`);
  });

  it('a 500-stream hold costs a bounded amount per stream, and everything comes back afterwards', async (t) => {
    const mock = await startMock(t);
    mock.defaultBehavior = { kind: 'ok', chunks: 20, chunkDelayMs: 100 }; // each stream lasts 2 s
    const policy = { upstreams: [{ name: 'primary', url: mock.url, bulkhead: { maxConcurrent: 512 } }] };
    const sidecar = await spawnSidecar(t, stringify(policy));
    const pid = sidecar.child.pid!;
    assert.equal((await post(`${sidecar.dataUrl}/primary/v1/chat/completions`, chat({ stream: true }))).status, 200);
    const baseRss = rssBytes(pid);
    const baseFds = openFds(pid);
    const sampler = sampleRss(pid);
    const agent = new Agent({ keepAlive: false, maxSockets: Infinity });
    const results = await Promise.all(Array.from({ length: 500 }, () => stream(`${sidecar.dataUrl}/primary/v1/chat/completions`, agent)));
    const peak = sampler.stop();
    const perStream = (peak - baseRss) / 500;
    t.diagnostic(`RSS ${Math.round(baseRss / MiB)} MiB before, peak ${Math.round(peak / MiB)} MiB: ${Math.round(perStream / 1024)} KiB per stream`);
    assert.equal(results.filter((r) => r.status === 200 && r.text.includes('[DONE]')).length, 500, 'every stream was served whole');
    assert.ok(peak - baseRss <= 500 * 128 * 1024 + SLACK, `RSS grew by ${Math.round((peak - baseRss) / MiB)} MiB`);
    const after = await settle(() => status(sidecar.adminUrl), (s) => s.upstreams[0]!.bulkhead.inFlight === 0 && s.upstreams[0]!.endpoints[0]!.inFlight === 0, 5000);
    assert.equal(after.upstreams[0]!.bulkhead.inFlight, 0);
    assert.equal(after.upstreams[0]!.endpoints[0]!.inFlight, 0);
    // The sidecar pools idle upstream connections; once the upstream closes them, its fds are back to where they were.
    mock.closeIdleConnections();
    const fds = await settle(() => openFds(pid), (n) => n <= baseFds, 5000);
    assert.ok(fds <= baseFds, `${fds} fds open, ${baseFds} before`);
  });
});

/**
 * A slow client: it sends a 9 MB body (declared or chunked) 1 MB every 50 ms while it has no answer, and then
 * stalls, never finishing it; records the status of any answer.
 */
function upload(port: number, body: Buffer, declared: boolean): { socket: Socket; status?: number } {
  const client: { socket: Socket; status?: number } = { socket: connect(port, '127.0.0.1') };
  const { socket } = client;
  socket.on('error', () => {});
  let head = '';
  socket.on('data', (d: Buffer) => {
    head += d.toString('latin1');
    const m = /^HTTP\/1\.1 (\d{3})/.exec(head);
    if (m) client.status ??= Number(m[1]);
  });
  const length = declared ? `content-length: ${body.length + 1_000_000}` : 'transfer-encoding: chunked';
  socket.write(`POST /primary/v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n${length}\r\n\r\n`);
  if (!declared) socket.write(`${body.length.toString(16)}\r\n`);
  let sent = 0;
  const timer = setInterval(() => {
    if (client.status !== undefined || sent >= body.length || socket.destroyed) return clearInterval(timer);
    if (socket.writableLength > 1_000_000) return; // the sidecar is not reading: wait
    socket.write(body.subarray(sent, sent + 1_000_000));
    sent += 1_000_000;
  }, 50);
  socket.once('close', () => clearInterval(timer));
  return client;
}

function stream(url: string, agent: Agent): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const body = chat({ stream: true });
    const req = request(url, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode!, text }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}
