/**
 * Streams that end cleanly without their API's terminator, read through the
 * official SDKs. After the last event said the answer finished (OpenAI's
 * finish_reason, Anthropic's stop_reason), the stream is complete: the app
 * gets the terminator, the request counts as a success, and its usage is
 * recorded. Without that, it was cut, and the app gets an error.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { stringify } from 'yaml';
import { startRawUpstream } from '../support/raw-upstream.js';
import { spawnSidecar } from '../support/sidecar-process.js';

const chunked = (events: string[]) => events.map((e) => `${Buffer.byteLength(e).toString(16)}\r\n${e}\r\n`).join('') + '0\r\n\r\n';
const sseHead = 'HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n';

const openaiEvents = (finished: boolean) => [
  ...['Hel', 'lo, ', 'world'].map((text) => `data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', model: 'gpt-test', choices: [{ index: 0, delta: { content: text }, finish_reason: null }] })}\n\n`),
  ...(finished
    ? [
        `data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', model: 'gpt-test', choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] })}\n\n`,
        `data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', model: 'gpt-test', choices: [], usage: { prompt_tokens: 7, completion_tokens: 3, total_tokens: 10 } })}\n\n`,
      ]
    : []),
];

const anthropicEvents = (finished: boolean) => {
  const event = (type: string, data: object) => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
  return [
    event('message_start', { message: { id: 'msg_1', type: 'message', role: 'assistant', model: 'claude-test', content: [], stop_reason: null, usage: { input_tokens: 9, output_tokens: 1 } } }),
    event('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }),
    ...['Hel', 'lo, ', 'world'].map((text) => event('content_block_delta', { index: 0, delta: { type: 'text_delta', text } })),
    ...(finished ? [event('content_block_stop', { index: 0 }), event('message_delta', { delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: 3 } })] : []),
  ];
};

async function metric(adminUrl: string, name: string, labels: Record<string, string>): Promise<number> {
  const text = await (await fetch(`${adminUrl}/metrics`)).text();
  return text
    .split('\n')
    .filter((l) => l.startsWith(`${name}{`) && Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`)))
    .reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
}

describe('streams that end without their terminator', () => {
  it('openai: finish_reason then a clean end is a complete answer, with [DONE] added and usage recorded', async (t) => {
    const upstream = await startRawUpstream(t, (socket, head) => socket.end(sseHead + chunked(openaiEvents(!head.includes('x-cut')))));
    const sidecar = await spawnSidecar(t, stringify({ upstreams: [{ name: 'primary', url: upstream.url, retry: { attempts: 1 } }] }));
    const client = new OpenAI({ apiKey: 'sk-test', baseURL: `${sidecar.dataUrl}/primary/v1`, maxRetries: 0 });
    const stream = await client.chat.completions.create({ model: 'gpt-test', messages: [{ role: 'user', content: 'hi' }], stream: true, stream_options: { include_usage: true } });
    let text = '';
    let usage: OpenAI.CompletionUsage | undefined | null;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? '';
      usage = chunk.usage ?? usage;
    }
    assert.equal(text, 'Hello, world');
    assert.equal(usage?.completion_tokens, 3);
    const raw = await fetch(`${sidecar.dataUrl}/primary/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ model: 'gpt-test', stream: true, messages: [] }) });
    assert.match(await raw.text(), /data: \[DONE\]\n\n$/, 'the app gets the terminator it expects');
    assert.equal(await metric(sidecar.adminUrl, 'breakwater_requests_total', { outcome: 'ok' }), 2, 'counted as successes');
    assert.equal(await metric(sidecar.adminUrl, 'breakwater_tokens_total', { type: 'output' }), 6, 'usage recorded');

    // Without finish_reason, a clean end is a cut: the SDK sees an error, not a short answer.
    const cut = await client.chat.completions.create({ model: 'gpt-test', messages: [{ role: 'user', content: 'hi' }], stream: true }, { headers: { 'x-cut': '1' } });
    await assert.rejects(async () => {
      for await (const chunk of cut) void chunk;
    }, /without its terminator/);
    assert.equal(await metric(sidecar.adminUrl, 'breakwater_requests_total', { class: 'reset', outcome: 'upstream_error' }), 1, 'the cut counted as a reset');
  });

  it('anthropic: stop_reason then a clean end is a complete message, with message_stop added and usage recorded', async (t) => {
    const upstream = await startRawUpstream(t, (socket, head) => socket.end(sseHead + chunked(anthropicEvents(!head.includes('x-cut')))));
    const sidecar = await spawnSidecar(t, stringify({ upstreams: [{ name: 'claude', url: upstream.url, api: 'anthropic', retry: { attempts: 1 } }] }));
    const client = new Anthropic({ apiKey: 'sk-ant-test', baseURL: `${sidecar.dataUrl}/claude`, maxRetries: 0 });
    const message = await client.messages.stream({ model: 'claude-test', max_tokens: 64, messages: [{ role: 'user', content: 'hi' }] }).finalMessage();
    const [block] = message.content;
    assert.equal(message.content.length, 1);
    assert.equal(block?.type === 'text' ? block.text : undefined, 'Hello, world');
    assert.equal(message.stop_reason, 'end_turn');
    assert.equal(message.usage.output_tokens, 3);
    assert.equal(await metric(sidecar.adminUrl, 'breakwater_requests_total', { outcome: 'ok' }), 1);
    assert.equal(await metric(sidecar.adminUrl, 'breakwater_tokens_total', { type: 'output' }), 3);

    await assert.rejects(
      client.messages.stream({ model: 'claude-test', max_tokens: 64, messages: [{ role: 'user', content: 'hi' }] }, { headers: { 'x-cut': '1' } }).finalMessage(),
      /without its terminator|stream_interrupted/,
    );
  });

  it('an answer that ends without text (a content filter\'s finish) is the answer: relayed once, not retried or sent elsewhere', async (t) => {
    let calls = 0;
    const chunk = (choices: object[], extra: object = {}) => `data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', model: 'gpt-test', choices, ...extra })}\n\n`;
    const upstream = await startRawUpstream(t, (socket) => {
      calls++;
      socket.end(sseHead + chunked([chunk([], { prompt_filter_results: [{ prompt_index: 0, content_filter_results: {} }] }), chunk([{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }]), chunk([{ index: 0, delta: {}, finish_reason: 'content_filter' }]), 'data: [DONE]\n\n']));
    });
    const other = await startRawUpstream(t, (socket) => socket.destroy());
    const sidecar = await spawnSidecar(t, stringify({ upstreams: [{ name: 'primary', url: upstream.url, fallback: [{ upstream: 'other' }] }, { name: 'other', url: other.url }] }));
    const client = new OpenAI({ apiKey: 'sk-test', baseURL: `${sidecar.dataUrl}/primary/v1`, maxRetries: 0 });
    const finishes: (string | null | undefined)[] = [];
    for await (const c of await client.chat.completions.create({ model: 'gpt-test', messages: [{ role: 'user', content: 'x' }], stream: true })) finishes.push(c.choices[0]?.finish_reason);
    assert.ok(finishes.includes('content_filter'), 'the app read the filter\'s finish');
    assert.equal(calls, 1);
  });

  it('a Chat Completions or Messages stream in NDJSON is not that API: a failure (invalid-response), never given a [DONE] inside NDJSON (red team, issue 25)', async (t) => {
    const ndjson = 'HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\ntransfer-encoding: chunked\r\n\r\n' + chunked(['{"message":{"content":"Hel"}}\n', '{"message":{"content":"lo"}}\n']);
    const upstream = await startRawUpstream(t, (socket) => socket.end(ndjson));
    const sidecar = await spawnSidecar(t, stringify({ upstreams: [{ name: 'openai', url: upstream.url, retry: { attempts: 2, backoff: { base: '5ms', max: '5ms' } } }, { name: 'claude', api: 'anthropic', url: upstream.url, retry: { attempts: 1 } }] }));
    const openai = await fetch(`${sidecar.dataUrl}/openai/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"model":"m","stream":true,"messages":[]}' });
    assert.equal(openai.status, 502);
    assert.match(await openai.text(), /invalid-response: streamed ndjson/);
    assert.equal(upstream.requests, 1, 'invalid-response is not in the default retry.on');
    const claude = await fetch(`${sidecar.dataUrl}/claude/v1/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"model":"m","max_tokens":5,"stream":true,"messages":[]}' });
    assert.equal(claude.status, 502);
    assert.match(await claude.text(), /"type":"error"/, "in Anthropic's error shape");
  });
});

