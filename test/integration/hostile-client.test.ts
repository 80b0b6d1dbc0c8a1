/**
 * Clients that misbehave: whatever they do, what their request holds comes
 * back within the deadlines, and a normal request is served afterwards.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { describe, it } from 'node:test';
import { chat, post, startMock, startRig } from '../support/harness.js';
import { startRawUpstream } from '../support/raw-upstream.js';

interface Status {
  upstreams: { bulkhead: { inFlight: number } }[];
}

async function inFlight(adminUrl: string): Promise<number> {
  const status = (await (await fetch(`${adminUrl}/status`)).json()) as Status;
  return status.upstreams[0]!.bulkhead.inFlight;
}

describe('hostile clients', () => {
  it('a client that stops reading a stream holds its slot no longer than the stream-idle timeout', async (t) => {
    // An upstream that streams 64 KiB events without end, far faster than a client that reads nothing can take them.
    const event = `data: {"choices":[{"delta":{"content":"${'x'.repeat(64 * 1024)}"}}]}\n\n`;
    const upstream = await startRawUpstream(t, (socket) => {
      socket.write('HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n');
      const pump = setInterval(() => socket.write(`${event.length.toString(16)}\r\n${event}\r\n`), 2);
      socket.on('close', () => clearInterval(pump));
    });
    const healthy = await startRawUpstream(t, (socket) => {
      const answer = '{"choices":[{"message":{"content":"ok"}}]}';
      socket.end(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${answer.length}\r\n\r\n${answer}`);
    });
    const rig = await startRig(t, {
      upstreams: [
        { name: 'primary', url: upstream.url, timeouts: { total: '30s', attempt: '30s', streamIdle: '300ms' }, bulkhead: { maxConcurrent: 1, maxQueue: 0 } },
        { name: 'healthy', url: healthy.url },
      ],
    });
    const { port } = new URL(rig.sidecar.dataUrl);
    const body = chat({ stream: true });
    const client = connect(Number(port), '127.0.0.1');
    t.after(() => client.destroy());
    client.pause(); // reads nothing, ever
    client.write(`POST /primary/v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);

    let held = 0;
    for (let i = 0; i < 50 && held === 0; i++, await new Promise((r) => setTimeout(r, 20))) held = await inFlight(rig.sidecar.adminUrl);
    assert.equal(held, 1, 'the stream took the only slot');
    const started = performance.now();
    while ((await inFlight(rig.sidecar.adminUrl)) > 0 && performance.now() - started < 5000) await new Promise((r) => setTimeout(r, 50));
    assert.equal(await inFlight(rig.sidecar.adminUrl), 0, 'the slot came back although the client never read');
    t.diagnostic(`slot back ${Math.round(performance.now() - started)} ms after the stream started (streamIdle 300 ms)`);
    assert.equal((await post(rig.url('/healthy/v1/chat/completions'), chat())).status, 200, 'a normal request is served afterwards');
  });

  it('slowloris: a client that never finishes its headers is cut off, and a long stream is not', async (t) => {
    const mock = await startMock(t);
    mock.defaultBehavior = { kind: 'ok', chunks: 6, chunkDelayMs: 250 }; // a 1.5 s stream
    const rig = await startRig(t, { upstreams: [{ name: 'primary', url: mock.url }], inbound: { headersTimeout: '300ms', requestTimeout: '600ms', maxConnections: 100 } });
    const { port } = new URL(rig.sidecar.dataUrl);
    const slow = connect(Number(port), '127.0.0.1');
    t.after(() => slow.destroy());
    slow.write('POST /primary/v1/chat/completions HTTP/1.1\r\nhost: x\r\n');
    const drip = setInterval(() => slow.write('x-drip: 1\r\n'), 100);
    t.after(() => clearInterval(drip));
    const closedAfter = await new Promise<number>((resolve) => {
      const started = performance.now();
      slow.on('close', () => resolve(performance.now() - started));
      slow.on('error', () => {});
    });
    clearInterval(drip);
    assert.ok(closedAfter < 3000, `closed after ${Math.round(closedAfter)} ms`);
    const stream = await post(rig.url('/primary/v1/chat/completions'), chat({ stream: true }));
    assert.equal(stream.status, 200);
    assert.ok(stream.ms > 1000, 'the stream outlived the request timeout');
    assert.match(stream.text, /\[DONE\]/);
  });

  it('refuses connections past the cap, and serves again once they close', async (t) => {
    const mock = await startMock(t);
    const rig = await startRig(t, { upstreams: [{ name: 'primary', url: mock.url }], inbound: { maxConnections: 5 } });
    const { port } = new URL(rig.sidecar.dataUrl);
    const idle = Array.from({ length: 5 }, () => connect(Number(port), '127.0.0.1').on('error', () => {}));
    await new Promise((r) => setTimeout(r, 100));
    const extra = connect(Number(port), '127.0.0.1').on('error', () => {});
    const refused = await Promise.race([new Promise((resolve) => extra.on('close', () => resolve(true))), new Promise((resolve) => setTimeout(() => resolve(false), 2000))]);
    extra.destroy();
    assert.equal(refused, true, 'the connection past the cap was closed');
    for (const s of idle) s.destroy();
    await new Promise((r) => setTimeout(r, 100));
    assert.equal((await post(rig.url('/primary/v1/chat/completions'), chat())).status, 200);
  });
});
