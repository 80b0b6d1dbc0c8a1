/**
 * Mid-stream recovery, read through the official SDKs: a stream that breaks
 * after text reached the app (cut, stall, error event) continues from a new
 * run of the chain, and the app reads one whole answer: continued where the
 * tier can continue a prefill, else regenerated and verified against the
 * text already sent. A new stream that diverges ends the stream with the
 * original failure; streams of several choices are never recovered.
 */
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { describe, it } from 'node:test';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { stringify } from 'yaml';
import { CANONICAL as MODEL_CANONICAL, TOKENS as MODEL_TOKENS, startModelUpstream } from '../support/model-upstream.js';
import { startRawUpstream } from '../support/raw-upstream.js';
import { spawnSidecar } from '../support/sidecar-process.js';

const TOKENS = Array.from({ length: 60 }, (_, i) => `w${i} `);
const CANONICAL = TOKENS.join('');
const sseHead = 'HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n';
const chunk = (text: string) => `${Buffer.byteLength(text).toString(16)}\r\n${text}\r\n`;
const openaiEvent = (delta: object, finish: string | null = null) => `data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', model: 'gpt-test', choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
const anthropicEvent = (type: string, data: object) => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;

/** Writes an OpenAI stream of `tokens`; `breakAfter` tokens in, it resets (`cut`) or goes silent (`stall`). */
function openaiStream(socket: Socket, tokens: string[], breakAfter?: { at: number; how: 'cut' | 'stall' }): void {
  socket.write(sseHead + chunk(openaiEvent({ role: 'assistant', content: '' })));
  tokens.forEach((token, i) => {
    if (breakAfter && i >= breakAfter.at) return;
    socket.write(chunk(openaiEvent({ content: token })));
  });
  if (breakAfter?.how === 'cut') return void setTimeout(() => socket.resetAndDestroy(), 20);
  if (breakAfter?.how === 'stall') return;
  socket.end(chunk(openaiEvent({}, 'stop')) + chunk('data: [DONE]\n\n') + '0\r\n\r\n');
}

const policy = (url: string, extra: object = {}) => stringify({ upstreams: [{ name: 'primary', url, timeouts: { streamIdle: '500ms' }, retry: { attempts: 2 }, ...extra }] });
const sdk = (dataUrl: string) => new OpenAI({ apiKey: 'sk-test', baseURL: `${dataUrl}/primary/v1`, maxRetries: 0 });

async function read(stream: AsyncIterable<OpenAI.ChatCompletionChunk>): Promise<string> {
  let text = '';
  for await (const c of stream) text += c.choices[0]?.delta.content ?? '';
  return text;
}

async function metric(adminUrl: string, labels: Record<string, string>): Promise<number> {
  const text = await (await fetch(`${adminUrl}/metrics`)).text();
  return text
    .split('\n')
    .filter((l) => l.startsWith('breakwater_stream_recoveries_total{') && Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`)))
    .reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
}

describe('mid-stream recovery', () => {
  for (const how of ['cut', 'stall'] as const) {
    it(`openai: a stream ${how === 'cut' ? 'cut after 40' : 'stalled after 20'} of 60 tokens reaches the app whole`, async (t) => {
      let calls = 0;
      const upstream = await startRawUpstream(t, (socket) => openaiStream(socket, TOKENS, ++calls === 1 ? { at: how === 'cut' ? 40 : 20, how } : undefined));
      const sidecar = await spawnSidecar(t, policy(upstream.url));
      const stream = await sdk(sidecar.dataUrl).chat.completions.create({ model: 'gpt-test', messages: [{ role: 'user', content: 'count' }], stream: true, temperature: 0 });
      assert.equal(await read(stream), CANONICAL);
      assert.equal(calls, 2);
      assert.equal(await metric(sidecar.adminUrl, { result: 'recovered', strategy: 'regenerate' }), 1);
    });
  }

  it('treats a stream below its throughput floor as stalled, and recovers it', async (t) => {
    let calls = 0;
    const upstream = await startRawUpstream(t, (socket) => {
      if (++calls > 1) return openaiStream(socket, TOKENS);
      // A trickle: a token every 250 ms (about 400 bytes/s), far below the floor, but never idle for long.
      socket.write(sseHead + chunk(openaiEvent({ role: 'assistant', content: '' })));
      let i = 0;
      const timer = setInterval(() => (socket.writable ? socket.write(chunk(openaiEvent({ content: TOKENS[i++ % TOKENS.length]! }))) : clearInterval(timer)), 250);
      socket.once('close', () => clearInterval(timer));
    });
    const sidecar = await spawnSidecar(t, policy(upstream.url, { throughputFloor: { bytesPerSecond: 2000, window: '1s' } }));
    const stream = await sdk(sidecar.dataUrl).chat.completions.create({ model: 'gpt-test', messages: [{ role: 'user', content: 'count' }], stream: true });
    assert.equal(await read(stream), CANONICAL);
    assert.equal(calls, 2);
    assert.equal(await metric(sidecar.adminUrl, { result: 'recovered' }), 1);
  });

  it('tells the app after the fact: an SSE comment before the terminator, and recoveries in the request log', async (t) => {
    let calls = 0;
    const upstream = await startRawUpstream(t, (socket) => openaiStream(socket, TOKENS, ++calls === 1 ? { at: 10, how: 'cut' } : undefined));
    const sidecar = await spawnSidecar(t, policy(upstream.url));
    const res = await fetch(`${sidecar.dataUrl}/primary/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ model: 'gpt-test', stream: true, messages: [] }) });
    const text = await res.text();
    assert.match(text, /\n: breakwater recovered this stream after: stream broken[^\n]*\n\ndata: \[DONE\]\n\n$/);
    const logged = await (async () => {
      for (let i = 0; i < 50; i++, await new Promise((r) => setTimeout(r, 20))) {
        const line = sidecar.logs.find((l) => l.msg === 'request');
        if (line) return line;
      }
      return undefined;
    })();
    assert.equal(logged?.recoveries, 1);
    assert.equal(logged?.outcome, 'ok');
  });

  it('openai: a new stream that diverges ends the stream with the original failure, after only the text already sent', async (t) => {
    let calls = 0;
    const upstream = await startRawUpstream(t, (socket) => (++calls === 1 ? openaiStream(socket, TOKENS, { at: 30, how: 'cut' }) : openaiStream(socket, TOKENS.map((w) => w.toUpperCase()))));
    const sidecar = await spawnSidecar(t, policy(upstream.url));
    const stream = await sdk(sidecar.dataUrl).chat.completions.create({ model: 'gpt-test', messages: [{ role: 'user', content: 'count' }], stream: true });
    let text = '';
    await assert.rejects(async () => {
      for await (const c of stream) text += c.choices[0]?.delta.content ?? '';
    }, /diverged/);
    assert.equal(text, TOKENS.slice(0, 30).join(''), 'nothing of the diverging stream reached the app');
    assert.equal(await metric(sidecar.adminUrl, { result: 'diverged' }), 1);
  });

  it('never recovers a stream of several choices (n: 2): recovery cannot vouch for them', async (t) => {
    let calls = 0;
    const twoChoices = (content: string) => `data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', model: 'gpt-test', choices: [0, 1].map((index) => ({ index, delta: { content }, finish_reason: null })) })}\n\n`;
    const upstream = await startRawUpstream(t, (socket) => {
      calls++;
      socket.write(sseHead + chunk(twoChoices('Let me ')) + chunk(twoChoices('look. ')));
      setTimeout(() => socket.resetAndDestroy(), 20);
    });
    const sidecar = await spawnSidecar(t, policy(upstream.url));
    const stream = await sdk(sidecar.dataUrl).chat.completions.create({ model: 'gpt-test', messages: [{ role: 'user', content: 'x' }], stream: true, n: 2 });
    await assert.rejects(read(stream));
    assert.equal(calls, 1);
    assert.equal(await metric(sidecar.adminUrl, { result: 'refused' }), 1);
  });

  it('is off with streamRecovery.maxRecoveries 0', async (t) => {
    let calls = 0;
    const upstream = await startRawUpstream(t, (socket) => openaiStream(socket, TOKENS, ++calls === 1 ? { at: 40, how: 'cut' } : undefined));
    const sidecar = await spawnSidecar(t, policy(upstream.url, { streamRecovery: { maxRecoveries: 0 } }));
    const stream = await sdk(sidecar.dataUrl).chat.completions.create({ model: 'gpt-test', messages: [{ role: 'user', content: 'count' }], stream: true });
    await assert.rejects(read(stream));
    assert.equal(calls, 1);
  });

  it('anthropic: a stream cut mid-way reaches the SDK as one whole message (regenerated: this upstream ignores prefills)', async (t) => {
    let calls = 0;
    const upstream = await startRawUpstream(t, (socket) => {
      const first = ++calls === 1;
      socket.write(
        sseHead +
          chunk(anthropicEvent('message_start', { message: { id: 'msg_1', type: 'message', role: 'assistant', model: 'claude-test', content: [], stop_reason: null, usage: { input_tokens: 5, output_tokens: 1 } } })) +
          chunk(anthropicEvent('content_block_start', { index: 0, content_block: { type: 'text', text: '' } })),
      );
      for (const [i, token] of TOKENS.entries()) {
        if (first && i >= 40) return void setTimeout(() => socket.resetAndDestroy(), 20);
        socket.write(chunk(anthropicEvent('content_block_delta', { index: 0, delta: { type: 'text_delta', text: token } })));
      }
      socket.end(
        chunk(anthropicEvent('content_block_stop', { index: 0 })) +
          chunk(anthropicEvent('message_delta', { delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: 60 } })) +
          chunk(anthropicEvent('message_stop', {})) +
          '0\r\n\r\n',
      );
    });
    const sidecar = await spawnSidecar(t, stringify({ upstreams: [{ name: 'claude', url: upstream.url, api: 'anthropic', retry: { attempts: 2 }, streamRecovery: { continuation: 'off' } }] }));
    const client = new Anthropic({ apiKey: 'sk-ant-test', baseURL: `${sidecar.dataUrl}/claude`, maxRetries: 0 });
    const message = await client.messages.stream({ model: 'claude-test', max_tokens: 100, messages: [{ role: 'user', content: 'count' }] }).finalMessage();
    const [block] = message.content;
    assert.equal(message.content.length, 1);
    assert.equal(block?.type === 'text' ? block.text : undefined, CANONICAL);
    assert.equal(message.stop_reason, 'end_turn');
    assert.equal(calls, 2);
  });
});

describe('mid-stream recovery by continuation', () => {
  const anthropicPolicy = (url: string, continuation?: string) =>
    stringify({ upstreams: [{ name: 'claude', url, api: 'anthropic', retry: { attempts: 2 }, ...(continuation ? { streamRecovery: { continuation } } : {}) }] });

  it('anthropic (prefill by default): the upstream is asked to continue the delivered text, trailing whitespace left to it, and the app reads one message', async (t) => {
    const upstream = await startModelUpstream(t, { prefill: 'continues', fault: (call) => (call.n === 1 ? { cutAfter: 40 } : undefined) });
    const sidecar = await spawnSidecar(t, anthropicPolicy(upstream.url));
    const client = new Anthropic({ apiKey: 'sk-ant-test', baseURL: `${sidecar.dataUrl}/claude`, maxRetries: 0 });
    const message = await client.messages.stream({ model: 'claude-test', max_tokens: 100, messages: [{ role: 'user', content: 'count' }] }).finalMessage();
    const [block] = message.content;
    assert.equal(block?.type === 'text' ? block.text : undefined, MODEL_CANONICAL);
    assert.equal(message.content.length, 1);
    const prefill = upstream.calls[1]?.json.messages.at(-1);
    assert.deepEqual(prefill, { role: 'assistant', content: MODEL_TOKENS.slice(0, 40).join('').trimEnd() });
    assert.equal(upstream.calls.length, 2);
    assert.equal(await metric(sidecar.adminUrl, { result: 'recovered', strategy: 'continuation' }), 1);
  });

  it('anthropic: a prefill refused with a 400 is regenerated and verified on the same upstream; the app never sees the 400', async (t) => {
    const upstream = await startModelUpstream(t, { prefill: 'rejects', fault: (call) => (call.n === 1 ? { cutAfter: 25 } : undefined) });
    const sidecar = await spawnSidecar(t, anthropicPolicy(upstream.url));
    const client = new Anthropic({ apiKey: 'sk-ant-test', baseURL: `${sidecar.dataUrl}/claude`, maxRetries: 0 });
    const message = await client.messages.stream({ model: 'claude-test', max_tokens: 100, messages: [{ role: 'user', content: 'count' }] }).finalMessage();
    const [block] = message.content;
    assert.equal(block?.type === 'text' ? block.text : undefined, MODEL_CANONICAL);
    assert.deepEqual(
      upstream.calls.map((c) => c.json.messages.at(-1).role),
      ['user', 'assistant', 'user'],
    );
    assert.equal(await metric(sidecar.adminUrl, { result: 'recovered', strategy: 'regenerate' }), 1);
  });

  it('anthropic with continuation off: regenerates, and sends no prefill', async (t) => {
    const upstream = await startModelUpstream(t, { prefill: 'continues', fault: (call) => (call.n === 1 ? { cutAfter: 25 } : undefined) });
    const sidecar = await spawnSidecar(t, anthropicPolicy(upstream.url, 'off'));
    const client = new Anthropic({ apiKey: 'sk-ant-test', baseURL: `${sidecar.dataUrl}/claude`, maxRetries: 0 });
    const message = await client.messages.stream({ model: 'claude-test', max_tokens: 100, messages: [{ role: 'user', content: 'count' }] }).finalMessage();
    assert.equal(message.content[0]?.type === 'text' ? message.content[0].text : undefined, MODEL_CANONICAL);
    assert.deepEqual(upstream.calls.map((c) => c.json.messages.length), [1, 1]);
  });

  it('vLLM (openai, continuation: continue-final-message): the prefill carries continue_final_message and no generation prompt', async (t) => {
    const upstream = await startModelUpstream(t, { prefill: 'continues', fault: (call) => (call.n === 1 ? { cutAfter: 33 } : undefined) });
    const sidecar = await spawnSidecar(t, policy(upstream.url, { streamRecovery: { continuation: 'continue-final-message' } }));
    const stream = await sdk(sidecar.dataUrl).chat.completions.create({ model: 'qwen', messages: [{ role: 'user', content: 'count' }], stream: true });
    assert.equal(await read(stream), MODEL_CANONICAL);
    const continued = upstream.calls[1]?.json;
    assert.equal(continued?.continue_final_message, true);
    assert.equal(continued?.add_generation_prompt, false);
    assert.deepEqual(continued?.messages.at(-1), { role: 'assistant', content: MODEL_TOKENS.slice(0, 33).join('') });
    assert.equal(await metric(sidecar.adminUrl, { result: 'recovered', strategy: 'continuation' }), 1);
  });

  it('openai by default: no prefill is sent (OpenAI does not continue one); the answer is regenerated', async (t) => {
    const upstream = await startModelUpstream(t, { prefill: 'ignores', fault: (call) => (call.n === 1 ? { cutAfter: 33 } : undefined) });
    const sidecar = await spawnSidecar(t, policy(upstream.url));
    const stream = await sdk(sidecar.dataUrl).chat.completions.create({ model: 'gpt-test', messages: [{ role: 'user', content: 'count' }], stream: true });
    assert.equal(await read(stream), MODEL_CANONICAL);
    assert.deepEqual(upstream.calls.map((c) => c.json.messages.length), [1, 1]);
    assert.equal(await metric(sidecar.adminUrl, { result: 'recovered', strategy: 'regenerate' }), 1);
  });
});
