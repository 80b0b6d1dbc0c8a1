/** The official `openai` SDK (maxRetries 0) pointed at a real sidecar process with baseURL. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import OpenAI from 'openai';
import { startMock } from '../support/harness.js';
import { freePort } from '../support/ports.js';
import { spawnSidecar } from '../support/sidecar-process.js';

const policy = (url: string, extra = '') => `
upstreams:
  - name: primary
    url: ${url}
    api: openai
    timeouts: {firstByte: 500ms}
    circuitBreaker: {consecutiveFailures: 3, openFor: 30s}
${extra}`;

const client = (dataUrl: string) => new OpenAI({ apiKey: 'sk-test', baseURL: `${dataUrl}/primary/v1`, maxRetries: 0 });
const messages = [{ role: 'user' as const, content: 'hi' }];

describe('openai SDK through the sidecar', () => {
  it('gets a success after a 429 with Retry-After: 1, at least 1 s later, on the second attempt', async (t) => {
    const mock = await startMock(t);
    mock.enqueue({ kind: 'status', status: 429, headers: { 'retry-after': '1' } });
    const sidecar = await spawnSidecar(t, policy(mock.url));
    const started = performance.now();
    const { data, response } = await client(sidecar.dataUrl).chat.completions.create({ model: 'gpt-test', messages }).withResponse();
    const elapsed = performance.now() - started;
    assert.equal(data.choices[0]!.message.content, 'Hello from the Breakwater mock upstream.');
    assert.equal(response.headers.get('x-breakwater-attempts'), '2');
    assert.ok(elapsed >= 1000, `succeeded after ${elapsed} ms`);
    t.diagnostic(`429 + Retry-After: 1 -> success after ${elapsed.toFixed(0)} ms`);
  });

  it('opens the breaker on a primary that refuses connections, then refuses at once with circuit_open', async (t) => {
    const port = await freePort();
    const sidecar = await spawnSidecar(t, policy(`http://127.0.0.1:${port}`).replace('timeouts', 'retry: {attempts: 1}\n    timeouts'));
    const openai = client(sidecar.dataUrl);
    for (let i = 0; i < 3; i++) {
      await assert.rejects(openai.chat.completions.create({ model: 'gpt-test', messages }), (e: InstanceType<typeof OpenAI.APIError>) => e.status === 502);
    }
    const times: number[] = [];
    for (let i = 0; i < 20; i++) {
      const started = performance.now();
      await assert.rejects(openai.chat.completions.create({ model: 'gpt-test', messages }), (e: InstanceType<typeof OpenAI.APIError>) => {
        assert.equal(e.status, 503);
        assert.equal(e.code, 'circuit_open');
        assert.equal(e.headers?.get('x-breakwater-attempts'), '0');
        return true;
      });
      times.push(performance.now() - started);
    }
    times.sort((a, b) => a - b);
    t.diagnostic(`circuit_open refusals through the SDK: median ${times[10]!.toFixed(2)} ms, max ${times[19]!.toFixed(2)} ms`);
  });

  it('hands a 400 to the SDK untouched after exactly one upstream call', async (t) => {
    const mock = await startMock(t);
    mock.defaultBehavior = { kind: 'status', status: 400, body: '{"error":{"message":"Invalid \'messages\': empty array.","type":"invalid_request_error","param":"messages","code":"empty_array"}}' };
    const sidecar = await spawnSidecar(t, policy(mock.url));
    await assert.rejects(client(sidecar.dataUrl).chat.completions.create({ model: 'gpt-test', messages: [] }), (e: InstanceType<typeof OpenAI.APIError>) => {
      assert.equal(e.status, 400);
      assert.equal(e.code, 'empty_array');
      assert.equal(e.param, 'messages');
      assert.match(e.message, /Invalid 'messages': empty array/);
      return true;
    });
    assert.equal(mock.requests.length, 1);
  });

  it('retries a stream that sends headers but no data after firstByte, and the SDK reads it whole', async (t) => {
    const mock = await startMock(t);
    mock.enqueue({ kind: 'headers-then-hang' });
    const sidecar = await spawnSidecar(t, policy(mock.url));
    const started = performance.now();
    const { data: stream, response } = await client(sidecar.dataUrl).chat.completions.create({ model: 'gpt-test', messages, stream: true }).withResponse();
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
    assert.equal(text.trim(), 'Hello from the Breakwater mock upstream.');
    assert.equal(response.headers.get('x-breakwater-attempts'), '2');
    assert.ok(performance.now() - started >= 500, 'the retry came after firstByte (500ms)');
    assert.equal(mock.requests.length, 2);
  });

  it('surfaces a stream that breaks mid-way as an SDK error, not a silent truncation', async (t) => {
    const mock = await startMock(t);
    mock.defaultBehavior = { kind: 'stream-then-reset', afterChunks: 2 };
    const sidecar = await spawnSidecar(t, policy(mock.url));
    const stream = await client(sidecar.dataUrl).chat.completions.create({ model: 'gpt-test', messages, stream: true });
    let text = '';
    await assert.rejects(
      (async () => {
        for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
      })(),
      /stream broken|other side closed|stream_interrupted/,
    );
    assert.ok(text.length > 0, 'the chunks before the break reached the app');
  });
});
