/**
 * Upstreams that misbehave below HTTP's surface: whatever they do, every
 * request gets one answer by its deadline and gives its bulkhead slot back.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { chat, post, startRig } from '../support/harness.js';
import { startRawUpstream } from '../support/raw-upstream.js';

interface Status {
  upstreams: { bulkhead: { inFlight: number }; endpoints: { inFlight: number }[] }[];
}

const TOTAL_MS = 1500;

describe('hostile upstreams', () => {
  const INTERIM = [
    { name: 'an unrequested 101 Switching Protocols', bytes: 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n' },
    { name: 'a bare 101 with no headers', bytes: 'HTTP/1.1 101 Switching Protocols\r\n\r\n' },
    { name: 'a 101 that then sends bytes', bytes: 'HTTP/1.1 101 Switching Protocols\r\n\r\n{"choices":[]}' },
    { name: 'a 100 Continue and nothing more', bytes: 'HTTP/1.1 100 Continue\r\n\r\n' },
    { name: 'endless 103 Early Hints', bytes: 'HTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\n'.repeat(50) },
    { name: 'a 199 with headers', bytes: 'HTTP/1.1 199 Whatever\r\nX: y\r\n\r\n' },
    { name: 'a status past 599', bytes: 'HTTP/1.1 799 Odd\r\ncontent-length: 2\r\n\r\n{}' },
  ];
  for (const interim of INTERIM)
  for (const stream of [false, true]) {
    it(`${interim.name} is answered as a failure in time, and the slot comes back (${stream ? 'stream' : 'plain'})`, async (t) => {
      const upstream = await startRawUpstream(t, (socket) => socket.write(interim.bytes));
      const rig = await startRig(t, {
        upstreams: [{ name: 'primary', url: upstream.url, timeouts: { total: `${TOTAL_MS}ms`, firstByte: '1s' }, retry: { attempts: 2, backoff: { base: '10ms', max: '10ms' } } }],
      });
      const answer = await Promise.race([
        post(rig.url('/primary/v1/chat/completions'), chat({ stream })),
        new Promise<undefined>((resolve) => setTimeout(resolve, TOTAL_MS + 2000)),
      ]);
      assert.ok(answer, 'the request was answered');
      assert.ok(answer.status === 502 || answer.status === 504, `a failure, not ${answer.status}`);
      assert.match(answer.json().error.code, /^upstream_(unavailable|timeout)$/);
      assert.equal(upstream.requests, 2, 'it was retried');
      const status = (await (await fetch(`${rig.sidecar.adminUrl}/status`)).json()) as Status;
      assert.equal(status.upstreams[0]!.bulkhead.inFlight, 0);
      assert.equal(status.upstreams[0]!.endpoints[0]!.inFlight, 0);
    });
  }

  it('an upstream that sends headers and then a body that never ends is cut at the attempt timeout', async (t) => {
    const upstream = await startRawUpstream(t, (socket) => {
      socket.write('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000000\r\n\r\n{"choices":');
    });
    const rig = await startRig(t, { upstreams: [{ name: 'primary', url: upstream.url, timeouts: { total: `${TOTAL_MS}ms`, attempt: '300ms' }, retry: { attempts: 1 } }] });
    const answer = await post(rig.url('/primary/v1/chat/completions'), chat());
    assert.equal(answer.status, 504);
    assert.equal(answer.json().error.code, 'upstream_timeout');
    const status = (await (await fetch(`${rig.sidecar.adminUrl}/status`)).json()) as Status;
    assert.equal(status.upstreams[0]!.bulkhead.inFlight, 0);
  });

  it('fails an answer larger than limits.maxAnswerBytes as invalid-response, declared or not', async (t) => {
    const big = `{"choices":[{"message":{"content":"${'x'.repeat(2 * 1024 * 1024)}"}}]}`;
    for (const declared of [true, false]) {
      const upstream = await startRawUpstream(t, (socket) => {
        const head = declared ? `content-length: ${big.length}` : 'connection: close';
        socket.end(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n${head}\r\n\r\n${big}`);
      });
      const rig = await startRig(t, { upstreams: [{ name: 'primary', url: upstream.url, retry: { attempts: 1 }, limits: { maxAnswerBytes: '1Mi' } }] });
      const answer = await post(rig.url('/primary/v1/chat/completions'), chat());
      assert.equal(answer.status, 502, declared ? 'declared' : 'undeclared');
      assert.match(answer.json().error.message, /invalid-response: the answer is larger than limits.maxAnswerBytes/);
      assert.equal(await rig.metric('breakwater_upstream_attempts_total', { class: 'invalid-response' }), 1);
    }
  });

  it('fails a stream that sends only comments past limits.maxStreamHeadBytes', async (t) => {
    const upstream = await startRawUpstream(t, (socket) => {
      socket.write('HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n');
      const comment = `: ${'k'.repeat(4096)}\n\n`;
      const pump = setInterval(() => socket.write(`${comment.length.toString(16)}\r\n${comment}\r\n`), 1);
      socket.on('close', () => clearInterval(pump));
    });
    const rig = await startRig(t, { upstreams: [{ name: 'primary', url: upstream.url, retry: { attempts: 1 }, timeouts: { firstByte: '10s' }, limits: { maxStreamHeadBytes: '64Ki' } }] });
    const answer = await post(rig.url('/primary/v1/chat/completions'), chat({ stream: true }));
    assert.equal(answer.status, 502);
    assert.match(answer.json().error.message, /before its first content event/);
  });
});
