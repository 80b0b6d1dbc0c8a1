/**
 * What a request holds (its breaker permit, its endpoint's in-flight count,
 * its bulkhead slot) is given back whatever happens while its answer is
 * written. Here: a model name that is not a legal header value, which the
 * sidecar used to echo in x-breakwater-model, so writing the stream's head
 * threw, the answer became a 502, and a half-open breaker kept the probe's
 * permit for good (every later request: circuit_open).
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { describe, it } from 'node:test';
import { UpstreamClient } from '../../sidecar/proxy/upstream/upstream-client.js';
import { until } from '../support/until.js';
import { chat, post, startMock, startRig } from '../support/harness.js';

interface Status {
  upstreams: { bulkhead: { inFlight: number }; endpoints: { inFlight: number }[]; breakers: { state: string }[] }[];
}

describe('proxy: releases', () => {
  for (const stream of [true, false]) {
    it(`answers a ${stream ? 'stream' : 'plain request'} for a model that is no legal header value, and the half-open breaker's probe is settled`, async (t) => {
      const mock = await startMock(t);
      const rig = await startRig(t, {
        upstreams: [
          {
            name: 'primary',
            url: mock.url,
            retry: { attempts: 1 },
            circuitBreaker: { scope: 'upstream', consecutiveFailures: 1, openFor: '100ms', halfOpen: { maxProbes: 1, successesToClose: 1 } },
          },
        ],
      });
      mock.enqueue({ kind: 'status', status: 500 });
      assert.equal((await post(rig.url('/primary/v1/chat/completions'), chat())).status, 500, 'one failure opens the breaker');
      await new Promise((r) => setTimeout(r, 150)); // half-open: the next request is the probe

      const hostile = await post(rig.url('/primary/v1/chat/completions'), chat({ stream, model: 'gpt-\u0100\r\nx-injected: 1' }));
      assert.equal(hostile.status, 200);
      assert.equal(hostile.headers.get('x-injected'), null);
      assert.equal(hostile.headers.get('x-breakwater-model'), null, 'an illegal value is not echoed');
      if (stream) assert.match(hostile.text, /data: \[DONE\]/);

      const status = (await (await fetch(`${rig.sidecar.adminUrl}/status`)).json()) as Status;
      const [primary] = status.upstreams;
      assert.equal(primary!.endpoints[0]!.inFlight, 0, 'the endpoint count went back');
      assert.equal(primary!.bulkhead.inFlight, 0, 'the bulkhead slot went back');
      assert.equal(primary!.breakers[0]!.state, 'closed', 'the probe succeeded and closed the breaker');
      const after = await post(rig.url('/primary/v1/chat/completions'), chat({ stream }));
      assert.equal(after.status, 200, 'the breaker is not wedged');
    });
  }

  it('closes an idle pooled upstream connection after 4 s, so a backend that vanished without a word is never reused (e2e flake, issue 26)', async (t) => {
    const sockets: { closed: boolean }[] = [];
    const server = createServer((req, res) => {
      req.resume();
      req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ id: 'c', object: 'chat.completion', model: 'm', choices: [{ index: 0, message: { role: 'assistant', content: 'hi' }, finish_reason: 'stop' }] })));
    });
    server.keepAliveTimeout = 60_000; // the upstream would keep it open: the sidecar must close it
    server.on('connection', (socket) => {
      const seen = { closed: false };
      sockets.push(seen);
      socket.on('close', () => (seen.closed = true));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.after(() => new Promise((resolve) => { server.closeAllConnections(); server.close(resolve); }));
    const rig = await startRig(t, { upstreams: [{ name: 'primary', url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }] });
    assert.equal((await post(rig.url('/primary/v1/chat/completions'), chat())).status, 200);
    assert.equal((await post(rig.url('/primary/v1/chat/completions'), chat())).status, 200);
    assert.equal(sockets.length, 1, 'kept alive between requests in a row');
    await until('the idle connection closed by the sidecar', () => sockets[0]!.closed, Boolean, 10_000);
    assert.equal((await post(rig.url('/primary/v1/chat/completions'), chat())).status, 200);
    assert.equal(sockets.length, 2, 'a new connection after it');
  });

  it('times a pooled upstream connection only while it sits idle: none while it carries a request, so no read re-arms a timer (issue 27)', async (t) => {
    const server = createServer((req, res) => {
      req.resume();
      req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'));
    });
    server.keepAliveTimeout = 60_000;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.after(() => new Promise((resolve) => { server.closeAllConnections(); server.close(resolve); }));
    const client = new UpstreamClient(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    t.after(() => client.close());
    /** One request: the socket's timeout while its answer is read, and the socket. */
    const call = () =>
      new Promise<{ busy: number | undefined; socket: Socket }>((resolve, reject) => {
        const request = client.request('/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json' } }, (response) => {
          const { socket } = response;
          const busy = socket.timeout;
          response.resume();
          response.on('end', () => resolve({ busy, socket }));
        });
        request.on('error', reject);
        request.end('{}');
      });
    const first = await call();
    assert.ok(!first.busy, `a new connection carries no timer (${first.busy})`);
    await until('the connection back in the pool, timed', () => first.socket.timeout === 4_000, Boolean, 2_000);
    const second = await call();
    assert.equal(second.socket, first.socket, 'the pooled connection was taken again');
    assert.ok(!second.busy, `a pooled connection loses its idle timer while it carries a request (${second.busy})`);
  });
});

