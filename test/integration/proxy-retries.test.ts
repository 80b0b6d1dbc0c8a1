/** Plain (non-streaming) requests through the sidecar against an upstream that misbehaves on purpose. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, it } from 'node:test';
import { chat, post, startMock, startRig } from '../support/harness.js';

const upstreamAt = (url: string, over: object = {}) => ({
  upstreams: [{ name: 'primary', url, api: 'openai', retry: { backoff: { base: '10ms', max: '50ms' } }, ...over }],
});

describe('proxy: plain requests', () => {
  it('passes a success through with x-breakwater headers and counts its tokens', async (t) => {
    const mock = await startMock(t);
    const rig = await startRig(t, upstreamAt(mock.url), 'debug'); // a clean success's line is a debug line
    const r = await post(rig.url('/primary/v1/chat/completions'), chat());
    assert.equal(r.status, 200);
    assert.equal(r.json().choices[0].message.content, 'Hello from the Breakwater mock upstream.');
    assert.equal(r.headers.get('x-breakwater-upstream'), 'primary');
    assert.equal(r.headers.get('x-breakwater-attempts'), '1');
    assert.equal(r.headers.get('x-breakwater-model'), 'gpt-test');
    assert.equal(mock.requests[0]!.path, '/v1/chat/completions');
    assert.equal(mock.requests[0]!.headers['x-breakwater-priority'], undefined);
    assert.equal(await rig.metric('breakwater_tokens_total', { type: 'input' }), 12);
    assert.equal(await rig.metric('breakwater_tokens_total', { type: 'output' }), 6);
    const line = rig.logs.find((l) => l.msg === 'request')!;
    assert.equal(line.outcome, 'ok');
    assert.equal(line.attempts, 1);
    assert.ok(!JSON.stringify(rig.logs).includes('secret prompt text'), 'no prompt text in logs');
  });

  it('keeps the upstream URL\'s base path and the query', async (t) => {
    const mock = await startMock(t);
    const rig = await startRig(t, upstreamAt(`${mock.url}/openai/v1`));
    await post(rig.url('/primary/chat/completions?api-version=2024'), chat());
    assert.equal(mock.requests[0]!.path, '/openai/v1/chat/completions?api-version=2024');
  });

  it('waits as Retry-After asks, then retries', async (t) => {
    const mock = await startMock(t);
    mock.enqueue({ kind: 'status', status: 429, headers: { 'retry-after-ms': '300' } });
    const rig = await startRig(t, upstreamAt(mock.url));
    const r = await post(rig.url('/primary/v1/chat/completions'), chat());
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('x-breakwater-attempts'), '2');
    assert.ok(r.ms >= 300, `answered after ${r.ms} ms, before the 300 ms the upstream asked for`);
    assert.equal(mock.requests.length, 2);
    assert.equal(await rig.metric('breakwater_retries_total', { class: 'rate-limited' }), 1);
  });

  it('does not wait longer than maxRetryAfter: the 429 passes through untouched', async (t) => {
    const mock = await startMock(t);
    const body = '{"error":{"message":"slow down","type":"requests","code":"rate_limit_exceeded"}}';
    mock.defaultBehavior = { kind: 'status', status: 429, body, headers: { 'retry-after': '120' } };
    const rig = await startRig(t, upstreamAt(mock.url, { retry: { maxRetryAfter: '30s' } }));
    const r = await post(rig.url('/primary/v1/chat/completions'), chat());
    assert.equal(r.status, 429);
    assert.equal(r.text, body);
    assert.equal(r.headers.get('retry-after'), '120');
    assert.equal(r.headers.get('x-breakwater-retry-stopped'), 'retry-after-too-long');
    assert.equal(mock.requests.length, 1);
  });

  it('retries 503 and 5xx with backoff and passes the last 5xx through untouched', async (t) => {
    const mock = await startMock(t);
    mock.enqueue({ kind: 'status', status: 503 });
    const rig = await startRig(t, upstreamAt(mock.url));
    assert.equal((await post(rig.url('/primary/v1/chat/completions'), chat())).status, 200);
    const body = '{"error":{"message":"boom","type":"server_error"}}';
    mock.defaultBehavior = { kind: 'status', status: 500, body };
    const r = await post(rig.url('/primary/v1/chat/completions'), chat());
    assert.equal(r.status, 500);
    assert.equal(r.text, body);
    assert.equal(r.headers.get('x-breakwater-attempts'), '3');
    assert.equal(r.headers.get('x-breakwater-retry-stopped'), 'attempts-exhausted');
    assert.equal(mock.requests.length, 2 + 3);
  });

  it('passes a 400 through untouched after exactly one call, never counting it against the breaker', async (t) => {
    const mock = await startMock(t);
    const body = '{"error":{"message":"bad messages","type":"invalid_request_error","param":"messages","code":null}}';
    mock.defaultBehavior = { kind: 'status', status: 400, body };
    const rig = await startRig(t, upstreamAt(mock.url, { circuitBreaker: { consecutiveFailures: 1 } }));
    for (let i = 0; i < 3; i++) {
      const r = await post(rig.url('/primary/v1/chat/completions'), chat());
      assert.equal(r.status, 400);
      assert.equal(r.text, body);
      assert.equal(r.headers.get('x-breakwater-attempts'), '1');
    }
    assert.equal(mock.requests.length, 3, 'one upstream call per request, breaker still closed');
    assert.equal(await rig.metric('breakwater_requests_total', { class: 'client-error', outcome: 'upstream_error' }), 3);
  });

  it('does not retry a context-length error and reports its class', async (t) => {
    const mock = await startMock(t);
    mock.defaultBehavior = { kind: 'status', status: 400, body: '{"error":{"message":"This model\'s maximum context length is 8192 tokens.","type":"invalid_request_error","code":"context_length_exceeded"}}' };
    const rig = await startRig(t, upstreamAt(mock.url));
    const r = await post(rig.url('/primary/v1/chat/completions'), chat());
    assert.equal(r.status, 400);
    assert.equal(mock.requests.length, 1);
    assert.equal(await rig.metric('breakwater_requests_total', { class: 'context-length' }), 1);
  });

  it('retries a request that hangs before its headers once firstByte passes', async (t) => {
    const mock = await startMock(t);
    mock.enqueue({ kind: 'hang' });
    const rig = await startRig(t, upstreamAt(mock.url, { timeouts: { firstByte: '200ms' } }));
    const r = await post(rig.url('/primary/v1/chat/completions'), chat());
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('x-breakwater-attempts'), '2');
    assert.ok(r.ms >= 200);
    assert.equal(await rig.metric('breakwater_upstream_attempts_total', { class: 'timeout' }), 1);
  });

  it('answers 504 upstream_timeout in the API\'s shape when every attempt times out', async (t) => {
    const mock = await startMock(t);
    mock.defaultBehavior = { kind: 'hang' };
    const rig = await startRig(t, upstreamAt(mock.url, { timeouts: { firstByte: '100ms' }, circuitBreaker: { consecutiveFailures: 0 } }));
    const r = await post(rig.url('/primary/v1/chat/completions'), chat());
    assert.equal(r.status, 504);
    assert.equal(r.json().error.code, 'upstream_timeout');
    assert.equal(r.json().error.type, 'server_error');
    assert.equal(r.headers.get('x-breakwater-attempts'), '3');
  });

  it('lets x-breakwater-timeout shorten the total timeout', async (t) => {
    const mock = await startMock(t);
    mock.defaultBehavior = { kind: 'hang' };
    const rig = await startRig(t, upstreamAt(mock.url, { timeouts: { firstByte: '10s', total: '60s' } }));
    const r = await post(rig.url('/primary/v1/chat/completions'), chat(), { 'x-breakwater-timeout': '300ms' });
    assert.equal(r.status, 504);
    assert.equal(r.json().error.code, 'upstream_timeout');
    assert.equal(mock.requests.length, 1, 'no time left for a retry');
    assert.equal(mock.requests[0]!.headers['x-breakwater-timeout'], undefined, 'x-breakwater-* headers are not forwarded');
  });

  it('retries a reset connection', async (t) => {
    const mock = await startMock(t);
    mock.enqueue({ kind: 'reset' });
    const rig = await startRig(t, upstreamAt(mock.url));
    const r = await post(rig.url('/primary/v1/chat/completions'), chat());
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('x-breakwater-attempts'), '2');
    assert.equal(await rig.metric('breakwater_upstream_attempts_total', { class: 'reset' }), 1);
  });

  it('stops retrying when the retry budget is spent', async (t) => {
    const mock = await startMock(t);
    mock.defaultBehavior = { kind: 'status', status: 503 };
    const rig = await startRig(t, upstreamAt(mock.url, { retry: { attempts: 3, backoff: { base: '1ms', max: '1ms' }, budget: { ratio: 0, minPerSecond: 1, window: '2s' } }, circuitBreaker: { consecutiveFailures: 0 } }));
    const first = await post(rig.url('/primary/v1/chat/completions'), chat());
    assert.equal(first.headers.get('x-breakwater-attempts'), '3', 'the budget allows 1/s × 2 s = 2 retries');
    const second = await post(rig.url('/primary/v1/chat/completions'), chat());
    assert.equal(second.status, 503);
    assert.equal(second.headers.get('x-breakwater-attempts'), '1');
    assert.equal(second.headers.get('x-breakwater-retry-stopped'), 'budget');
    assert.equal(await rig.metric('breakwater_retry_budget_refusals_total'), 1);
  });

  it('answers retry_budget_exhausted when no upstream answer is left to pass on', async (t) => {
    const mock = await startMock(t);
    mock.defaultBehavior = { kind: 'reset' };
    const rig = await startRig(t, upstreamAt(mock.url, { retry: { budget: { ratio: 0, minPerSecond: 0, window: '1s' } }, circuitBreaker: { consecutiveFailures: 0 } }));
    const r = await post(rig.url('/primary/v1/chat/completions'), chat());
    assert.equal(r.status, 503);
    assert.equal(r.json().error.code, 'retry_budget_exhausted');
    assert.ok(r.headers.get('retry-after'));
  });

  it('sends a body over maxBodyBytes once, intact, and never retries it', async (t) => {
    const mock = await startMock(t);
    mock.enqueue({ kind: 'status', status: 503 });
    const rig = await startRig(t, upstreamAt(mock.url, { retry: { maxBodyBytes: '1Ki' } }));
    const big = chat({ padding: 'x'.repeat(5000) });
    const r = await post(rig.url('/primary/v1/chat/completions'), big);
    assert.equal(r.status, 503);
    assert.equal(r.headers.get('x-breakwater-retry-stopped'), 'body-not-replayable');
    assert.equal(mock.requests.length, 1);
    assert.equal((mock.requests[0]!.body.padding as string).length, 5000);
  });

  it('sets the policy\'s credential and never forwards the app\'s', async (t) => {
    const mock = await startMock(t);
    process.env.BREAKWATER_TEST_KEY = 'sk-from-policy';
    t.after(() => delete process.env.BREAKWATER_TEST_KEY);
    const rig = await startRig(t, upstreamAt(mock.url, { auth: { env: 'BREAKWATER_TEST_KEY' } }));
    await post(rig.url('/primary/v1/chat/completions'), chat(), { authorization: 'Bearer sk-app', 'x-api-key': 'app-key' });
    assert.equal(mock.requests[0]!.headers.authorization, 'Bearer sk-from-policy');
    assert.equal(mock.requests[0]!.headers['x-api-key'], undefined);
    assert.ok(!JSON.stringify(rig.logs).includes('sk-from-policy'));
  });

  it('answers bad requests with a 4xx in the API\'s error shape', async (t) => {
    const mock = await startMock(t);
    const rig = await startRig(t, upstreamAt(mock.url));
    const unknown = await post(rig.url('/secondary/v1/chat/completions'), chat());
    assert.equal(unknown.status, 404);
    assert.equal(unknown.json().error.code, 'unknown_upstream');
    assert.match(unknown.json().error.message, /known upstreams: primary/);
    const priority = await post(rig.url('/primary/v1/chat/completions'), chat(), { 'x-breakwater-priority': 'vip' });
    assert.equal(priority.status, 400);
    assert.match(priority.json().error.message, /critical, normal, batch/);
    const timeout = await post(rig.url('/primary/v1/chat/completions'), chat(), { 'x-breakwater-timeout': 'soon' });
    assert.equal(timeout.status, 400);
    assert.equal(mock.requests.length, 0, 'nothing reached the upstream');
  });

  it('never forwards to a host the policy does not name', async (t) => {
    const mock = await startMock(t);
    const rig = await startRig(t, upstreamAt(mock.url));
    const { request } = await import('node:http');
    const port = Number(new URL(rig.sidecar.dataUrl).port);
    for (const path of ['http://evil.example/v1/chat', '//evil.example/v1/chat', '/evil.example/v1']) {
      const status = await new Promise<number>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, path, method: 'GET' }, (res) => {
          res.resume();
          resolve(res.statusCode!);
        });
        req.on('error', reject).end();
      });
      assert.equal(status, 404, path);
    }
    const viaPrimary = await fetch(rig.url('/primary//evil.example/x'));
    await viaPrimary.text();
    assert.equal(mock.requests.at(-1)!.path, '//evil.example/x', 'a path that looks like a host stays a path on the named upstream');
  });

  it('fails a connection that is not opened within timeouts.connect as connect-failure, and moves on (a dropped SYN, as into a backend that went away)', async (t) => {
    // A listener whose accept queue is full: the kernel drops further SYNs, so a connect neither succeeds nor is refused.
    const blackhole = spawn('python3', ['-c', `
import socket, time
s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(0)
port = s.getsockname()[1]
held = []
for _ in range(4):
    c = socket.socket(); c.setblocking(False)
    try: c.connect(('127.0.0.1', port))
    except BlockingIOError: pass
    held.append(c)
print(port, flush=True)
time.sleep(120)
`]);
    t.after(() => blackhole.kill());
    const port = await new Promise<string>((resolve) => blackhole.stdout.once('data', (d: Buffer) => resolve(d.toString().trim())));
    const mock = await startMock(t);
    const rig = await startRig(t, {
      upstreams: [
        { name: 'primary', url: `http://127.0.0.1:${port}`, timeouts: { connect: '300ms', firstByte: '20s' }, retry: { attempts: 2, backoff: { base: '10ms', max: '10ms' } }, fallback: [{ upstream: 'other' }] },
        { name: 'other', url: mock.url },
      ],
    });
    const r = await post(rig.url('/primary/v1/chat/completions'), chat());
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('x-breakwater-fallback'), 'other');
    assert.equal(await rig.metric('breakwater_upstream_attempts_total', { upstream: 'primary', class: 'connect-failure' }), 2, 'both attempts failed to connect (not a first-byte timeout), and the retry was made');
  });
});

