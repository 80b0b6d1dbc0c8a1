/** Streaming through the sidecar: SSE (OpenAI, Anthropic) and NDJSON (Ollama), healthy and broken. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { chat, post, startMock, startRig } from '../support/harness.js';

const policy = (url: string, api = 'openai', over: object = {}) => ({
  upstreams: [{ name: 'primary', url, api, retry: { backoff: { base: '10ms', max: '20ms' } }, timeouts: { firstByte: '300ms', streamIdle: '300ms' }, ...over }],
});

/** Reads an SSE body, noting when the first chunk arrived. */
async function readStream(url: string, body: string) {
  const started = performance.now();
  const res = await fetch(url, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
  let firstChunkMs: number | undefined;
  let text = '';
  const decoder = new TextDecoder();
  for await (const chunk of res.body!) {
    firstChunkMs ??= performance.now() - started;
    text += decoder.decode(chunk as Uint8Array, { stream: true });
  }
  return { status: res.status, headers: res.headers, text, firstChunkMs: firstChunkMs!, totalMs: performance.now() - started };
}

const dataEvents = (text: string) => text.split('\n\n').filter((e) => e.includes('data:')).map((e) => e.slice(e.indexOf('data:') + 5).trim());

describe('proxy: streams', () => {
  it('relays an SSE stream as it arrives, not after it ends', async (t) => {
    const mock = await startMock(t);
    mock.defaultBehavior = { kind: 'ok', chunks: 5, chunkDelayMs: 100 };
    const rig = await startRig(t, policy(mock.url));
    const r = await readStream(rig.url('/primary/v1/chat/completions'), chat({ stream: true }));
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type')!, /text\/event-stream/);
    assert.equal(r.headers.get('x-breakwater-attempts'), '1');
    const events = dataEvents(r.text);
    assert.equal(events.at(-1), '[DONE]');
    const content = events.slice(0, -1).map((e) => JSON.parse(e).choices[0].delta.content ?? '').join('');
    assert.equal(content.trim(), 'Hello from the Breakwater mock upstream.');
    assert.ok(r.firstChunkMs < r.totalMs - 250, `first chunk at ${r.firstChunkMs} ms, end at ${r.totalMs} ms: the stream was buffered`);
    assert.equal(await rig.metric('breakwater_tokens_total', { type: 'output' }), 6, 'usage read from the stream');
  });

  it('bounds a generation by perOutputToken × max_tokens', async (t) => {
    const mock = await startMock(t);
    mock.defaultBehavior = { kind: 'ok', chunks: 5, chunkDelayMs: 150 };
    // The first token comes 150 ms in: firstByte (to the first content event) must allow it.
    const rig = await startRig(t, policy(mock.url, 'openai', { timeouts: { firstByte: '300ms', streamIdle: '1s', perOutputToken: '10ms' }, streamRecovery: { maxRecoveries: 0 } }));
    const quick = await readStream(rig.url('/primary/v1/chat/completions'), chat({ stream: true, max_tokens: 200 }));
    assert.equal(dataEvents(quick.text).at(-1), '[DONE]', '300ms + 200 × 10ms = 2.3 s is enough');
    const capped = await readStream(rig.url('/primary/v1/chat/completions'), chat({ stream: true, max_tokens: 20 }));
    const last = JSON.parse(dataEvents(capped.text).at(-1)!);
    assert.equal(last.error.code, 'upstream_timeout');
    assert.match(last.error.message, /attempt timeout/, '300ms + 20 × 10ms = 500 ms is not, for a 750 ms stream');
  });

  it('retries a stream that sends headers but no data once firstByte passes', async (t) => {
    const mock = await startMock(t);
    mock.enqueue({ kind: 'headers-then-hang' });
    const rig = await startRig(t, policy(mock.url));
    const r = await readStream(rig.url('/primary/v1/chat/completions'), chat({ stream: true }));
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('x-breakwater-attempts'), '2');
    assert.equal(dataEvents(r.text).at(-1), '[DONE]');
    assert.ok(r.totalMs >= 300);
  });

  it('ends a stream that stalls mid-way with an error event in OpenAI\'s shape and counts it against the breaker', async (t) => {
    const mock = await startMock(t);
    mock.defaultBehavior = { kind: 'stream-then-hang', afterChunks: 2 };
    const rig = await startRig(t, policy(mock.url, 'openai', { circuitBreaker: { consecutiveFailures: 1 } }));
    const r = await readStream(rig.url('/primary/v1/chat/completions'), chat({ stream: true }));
    assert.equal(r.status, 200);
    const events = dataEvents(r.text);
    const last = JSON.parse(events.at(-1)!);
    assert.equal(last.error.code, 'upstream_timeout');
    assert.match(last.error.message, /stream-idle timeout/);
    assert.equal(events.length, 1 + 2 + 1, 'start, two content chunks, the error');
    assert.equal(mock.requests.length, 1, 'no retry after data reached the app');
    assert.equal(await rig.metric('breakwater_circuit_breaker_state', { state: 'open' }), 1);
    assert.equal(await rig.metric('breakwater_requests_total', { class: 'timeout', outcome: 'upstream_error' }), 1);
  });

  it('ends a stream whose connection resets mid-way with an error event', async (t) => {
    const mock = await startMock(t);
    mock.defaultBehavior = { kind: 'stream-then-reset', afterChunks: 1 };
    const rig = await startRig(t, policy(mock.url));
    const r = await readStream(rig.url('/primary/v1/chat/completions'), chat({ stream: true }));
    const last = JSON.parse(dataEvents(r.text).at(-1)!);
    assert.equal(last.error.code, 'stream_interrupted');
  });

  it('does not let a stream without its terminator pass as complete', async (t) => {
    const mock = await startMock(t);
    mock.defaultBehavior = { kind: 'stream-without-terminator', afterChunks: 2 };
    const rig = await startRig(t, policy(mock.url));
    const r = await readStream(rig.url('/primary/v1/chat/completions'), chat({ stream: true }));
    const last = JSON.parse(dataEvents(r.text).at(-1)!);
    assert.equal(last.error.code, 'stream_interrupted');
    assert.match(last.error.message, /without its terminator/);
  });

  it('speaks Anthropic: relays message events and ends a broken stream with event: error', async (t) => {
    const mock = await startMock(t);
    const rig = await startRig(t, policy(mock.url, 'anthropic'));
    const ok = await readStream(rig.url('/primary/v1/messages'), JSON.stringify({ model: 'claude-test', max_tokens: 64, stream: true, messages: [] }));
    assert.match(ok.text, /event: message_stop/);
    mock.defaultBehavior = { kind: 'stream-then-hang', afterChunks: 1 };
    const broken = await readStream(rig.url('/primary/v1/messages'), JSON.stringify({ model: 'claude-test', max_tokens: 64, stream: true, messages: [] }));
    const lastEvent = broken.text.trim().split('\n\n').at(-1)!;
    assert.match(lastEvent, /^event: error\ndata: /);
    const data = JSON.parse(lastEvent.split('\ndata: ')[1]!);
    assert.equal(data.type, 'error');
    assert.equal(data.error.type, 'api_error');
  });

  it('answers Anthropic apps in Anthropic\'s error shape', async (t) => {
    const mock = await startMock(t);
    mock.defaultBehavior = { kind: 'hang' };
    const rig = await startRig(t, policy(mock.url, 'anthropic', { retry: { attempts: 1 } }));
    const r = await post(rig.url('/primary/v1/messages'), JSON.stringify({ model: 'claude-test', max_tokens: 10, messages: [] }));
    assert.equal(r.status, 504);
    assert.deepEqual(Object.keys(r.json()), ['type', 'error']);
    assert.equal(r.json().type, 'error');
    assert.equal(r.json().error.type, 'api_error');
  });

  it('speaks Ollama NDJSON: relays lines, retries a stream that never starts, ends a broken one with an error line', async (t) => {
    const mock = await startMock(t);
    mock.enqueue({ kind: 'headers-then-hang' });
    const rig = await startRig(t, policy(mock.url, 'ollama'));
    const body = JSON.stringify({ model: 'llama3.1:8b', messages: [{ role: 'user', content: 'hi' }] });
    const ok = await readStream(rig.url('/primary/api/chat'), body);
    assert.match(ok.headers.get('content-type')!, /ndjson/);
    assert.equal(ok.headers.get('x-breakwater-attempts'), '2');
    const lines = ok.text.trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(lines.at(-1).done, true);
    assert.equal(await rig.metric('breakwater_tokens_total', { type: 'input' }), 12);
    mock.defaultBehavior = { kind: 'stream-then-reset', afterChunks: 2 };
    const broken = await readStream(rig.url('/primary/api/chat'), body);
    const last = JSON.parse(broken.text.trim().split('\n').at(-1)!);
    assert.match(last.error, /^stream_interrupted: /);
    mock.defaultBehavior = { kind: 'ok' };
    const plain = await post(rig.url('/primary/api/generate'), JSON.stringify({ model: 'llama3.1:8b', prompt: 'hi', stream: false }));
    assert.equal(plain.json().response, 'Hello from the Breakwater mock upstream.');
  });

  it('cancels the upstream stream when the app stops reading', async (t) => {
    const mock = await startMock(t);
    mock.defaultBehavior = { kind: 'ok', chunks: 50, chunkDelayMs: 20 };
    const rig = await startRig(t, policy(mock.url));
    const abort = new AbortController();
    const res = await fetch(rig.url('/primary/v1/chat/completions'), { method: 'POST', body: chat({ stream: true }), headers: { 'content-type': 'application/json' }, signal: abort.signal });
    const reader = res.body!.getReader();
    await reader.read();
    abort.abort();
    for (let i = 0; i < 100 && mock.abandoned === 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(mock.abandoned, 1);
    assert.equal(await rig.metric('breakwater_circuit_breaker_state', { state: 'closed' }), 1);
  });
});
