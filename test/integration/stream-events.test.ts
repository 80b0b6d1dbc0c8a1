/**
 * A stream is relayed whole event by whole event, each checked: an error
 * event from the upstream (Anthropic's `event: error`, an OpenAI
 * `{"error": ...}` chunk) or a malformed event ends the stream as a failure
 * of its class, with one error event in the app's format; half an event
 * never reaches the app; and a stream whose first event is an error is
 * retried before the app sees anything.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import Anthropic from '@anthropic-ai/sdk';
import { chat, post, startRig } from '../support/harness.js';
import { startRawUpstream } from '../support/raw-upstream.js';

const sseHead = 'HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n';
const chunk = (text: string) => `${Buffer.byteLength(text).toString(16)}\r\n${text}\r\n`;
const delta = (text: string) => `data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', choices: [{ index: 0, delta: { content: text }, finish_reason: null }] })}\n\n`;
const anthropicEvent = (type: string, data: object) => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
const count = (text: string, needle: string) => text.split(needle).length - 1;

describe('stream events, one by one', () => {
  it('anthropic: a mid-stream overloaded_error ends the stream as overloaded, with one error event, and the SDK sees an error', async (t) => {
    const upstream = await startRawUpstream(t, (socket) =>
      socket.end(
        sseHead +
          chunk(anthropicEvent('message_start', { message: { id: 'm', type: 'message', role: 'assistant', model: 'claude-test', content: [], usage: { input_tokens: 5, output_tokens: 1 } } })) +
          chunk(anthropicEvent('content_block_start', { index: 0, content_block: { type: 'text', text: '' } })) +
          chunk(anthropicEvent('content_block_delta', { index: 0, delta: { type: 'text_delta', text: 'Hello' } })) +
          chunk(anthropicEvent('error', { error: { type: 'overloaded_error', message: 'Overloaded' } })) +
          '0\r\n\r\n',
      ),
    );
    const rig = await startRig(t, { upstreams: [{ name: 'claude', url: upstream.url, api: 'anthropic', retry: { attempts: 1 } }] });
    const client = new Anthropic({ apiKey: 'sk-ant-test', baseURL: rig.url('/claude'), maxRetries: 0 });
    await assert.rejects(client.messages.stream({ model: 'claude-test', max_tokens: 64, messages: [{ role: 'user', content: 'hi' }] }).finalMessage(), /overloaded/i);
    const raw = await post(rig.url('/claude/v1/messages'), JSON.stringify({ model: 'claude-test', max_tokens: 64, stream: true, messages: [] }));
    assert.equal(count(raw.text, 'event: error'), 1, 'one error event, the sidecar\'s');
    assert.match(raw.text, /Hello/);
    assert.equal(await rig.metric('breakwater_requests_total', { class: 'overloaded' }), 2);
  });

  it('openai: an {"error": ...} chunk mid-stream ends it with one error event, counted by its class', async (t) => {
    const upstream = await startRawUpstream(t, (socket) =>
      socket.end(sseHead + chunk(delta('Hel')) + chunk(`data: {"error":{"message":"The server had an error while processing your request.","type":"server_error"}}\n\n`) + chunk('data: [DONE]\n\n') + '0\r\n\r\n'),
    );
    const rig = await startRig(t, { upstreams: [{ name: 'primary', url: upstream.url, retry: { attempts: 1 } }] });
    const raw = await post(rig.url('/primary/v1/chat/completions'), chat({ stream: true }));
    assert.equal(raw.status, 200);
    assert.match(raw.text, /"content":"Hel"/);
    assert.equal(count(raw.text, '"error"'), 1, 'the upstream\'s error chunk is replaced by the sidecar\'s');
    assert.ok(!raw.text.includes('[DONE]'), 'not made to look complete');
    assert.equal(await rig.metric('breakwater_requests_total', { class: 'server-error', outcome: 'upstream_error' }), 1);
  });

  it('a malformed event is never relayed as a success: the stream ends as invalid-response', async (t) => {
    const upstream = await startRawUpstream(t, (socket) => socket.end(sseHead + chunk(delta('Hel')) + chunk('data: {not json at all\n\n') + chunk(delta('lo')) + chunk('data: [DONE]\n\n') + '0\r\n\r\n'));
    const rig = await startRig(t, { upstreams: [{ name: 'primary', url: upstream.url, retry: { attempts: 1 } }] });
    const raw = await post(rig.url('/primary/v1/chat/completions'), chat({ stream: true }));
    assert.ok(!raw.text.includes('data: {not json'), 'the garbage did not reach the app as an event (only quoted in the error)');
    assert.ok(!raw.text.includes('[DONE]'));
    assert.match(raw.text, /primary: a malformed event/);
    assert.equal(await rig.metric('breakwater_requests_total', { class: 'invalid-response' }), 1);
  });

  it('never sends half an event: a stream cut mid-event ends after the last whole one', async (t) => {
    const upstream = await startRawUpstream(t, (socket) => socket.write(sseHead + chunk(delta('Hel')) + chunk('data: {"choices":[{"delta":{"content":"half'), () => setTimeout(() => socket.resetAndDestroy(), 50)));
    const rig = await startRig(t, { upstreams: [{ name: 'primary', url: upstream.url, retry: { attempts: 1 } }] });
    const raw = await post(rig.url('/primary/v1/chat/completions'), chat({ stream: true }));
    assert.ok(!raw.text.includes('half'), 'the unfinished event was held back');
    const events = raw.text.split('\n\n').filter(Boolean);
    for (const e of events) assert.doesNotThrow(() => JSON.parse(e.replace(/^data: /, '')), `a whole event: ${e}`);
    assert.match(raw.text, /stream_interrupted/);
  });

  it('measures time to first token to the first content event: a role chunk and pings do not count', async (t) => {
    // The role chunk and a ping at once, the first token 1.5 s later.
    const slow = await startRawUpstream(t, (socket) => {
      socket.write(sseHead + chunk(`data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }] })}\n\n`) + chunk(': ping\n\n'));
      setTimeout(() => socket.writable && socket.end(chunk(delta('late')) + chunk('data: [DONE]\n\n') + '0\r\n\r\n'), 1500);
    });
    const fast = await startRawUpstream(t, (socket) => socket.end(sseHead + chunk(delta('from the fallback')) + chunk('data: [DONE]\n\n') + '0\r\n\r\n'));
    const upstreams = (firstByte?: string) => [
      { name: 'primary', url: slow.url, retry: { attempts: 1 }, ...(firstByte ? { timeouts: { firstByte } } : {}), fallback: [{ upstream: 'other' }] },
      { name: 'other', url: fast.url },
    ];
    const patient = await startRig(t, { upstreams: upstreams() });
    const waited = await post(patient.url('/primary/v1/chat/completions'), chat({ stream: true }));
    assert.match(waited.text, /"content":"late"/, 'the default first-token timeout waits for a late first token');
    const impatient = await startRig(t, { upstreams: upstreams('1s') });
    const fellBack = await post(impatient.url('/primary/v1/chat/completions'), chat({ stream: true }));
    assert.match(fellBack.text, /from the fallback/, 'a first-token timeout sends the request to the next tier');
    assert.ok(!fellBack.text.includes('"role"'), 'nothing of the slow stream reached the app');
    assert.equal(fellBack.headers.get('x-breakwater-fallback'), 'other');
  });

  it('a stream whose first event is an error is retried before the app sees anything', async (t) => {
    let calls = 0;
    const upstream = await startRawUpstream(t, (socket) => {
      calls++;
      const events = calls === 1 ? [anthropicEvent('error', { error: { type: 'overloaded_error', message: 'Overloaded' } })] : [anthropicEvent('message_start', { message: { id: 'm', type: 'message', role: 'assistant', model: 'claude-test', content: [], usage: { input_tokens: 5, output_tokens: 1 } } }), anthropicEvent('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }), anthropicEvent('content_block_delta', { index: 0, delta: { type: 'text_delta', text: 'Hello' } }), anthropicEvent('content_block_stop', { index: 0 }), anthropicEvent('message_delta', { delta: { stop_reason: 'end_turn' }, usage: { output_tokens: 1 } }), anthropicEvent('message_stop', {})];
      socket.end(sseHead + events.map(chunk).join('') + '0\r\n\r\n');
    });
    const rig = await startRig(t, { upstreams: [{ name: 'claude', url: upstream.url, api: 'anthropic', retry: { attempts: 2, backoff: { base: '10ms', max: '10ms' } } }] });
    const client = new Anthropic({ apiKey: 'sk-ant-test', baseURL: rig.url('/claude'), maxRetries: 0 });
    const message = await client.messages.stream({ model: 'claude-test', max_tokens: 64, messages: [{ role: 'user', content: 'hi' }] }).finalMessage();
    const [block] = message.content;
    assert.equal(block?.type === 'text' ? block.text : undefined, 'Hello');
    assert.equal(calls, 2);
    assert.equal(await rig.metric('breakwater_upstream_attempts_total', { class: 'overloaded' }), 1);
  });
});
