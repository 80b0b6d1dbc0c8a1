/**
 * The fake model servers (test/support/model-upstream.ts), read directly by
 * the official SDKs, without a sidecar in between: each fault does what it
 * says, at the place it says, and each shape is one that the SDKs read as
 * they read the provider's own. The sidecar tests build on these fakes, so
 * a fake that lied would make them prove nothing.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { anthropicCreate, anthropicStream, ANTHROPIC_WEATHER_TOOL, ollamaChat, openaiFinal, openaiStream, show, WEATHER_TOOL } from '../support/app-clients.js';
import { startRawUpstream } from '../support/raw-upstream.js';
import { CANONICAL, TERMINATOR_MENTION, TOKENS, TWO_CHOICES, argumentFragments, reasoningTokens, startModelUpstream, twoChoiceEventsBefore, type ToolCall } from '../support/model-upstream.js';

const upTo = (n: number) => TOKENS.slice(0, n).join('');
const WEATHER: ToolCall = { name: 'get_weather', arguments: JSON.stringify({ location: 'Paris, France', unit: 'celsius', days: [1, 2, 3], details: { wind: true, humidity: false } }) };

describe('the fake model servers, read by the SDKs directly', { concurrency: true }, () => {
  describe('OpenAI', { concurrency: true }, () => {
    it('a healthy realistic stream, with usage: the whole answer, the usage, finish_reason stop', async (t) => {
      const up = await startModelUpstream(t, { realistic: true });
      const s = await openaiStream(`${up.url}/v1`, { includeUsage: true });
      assert.equal(s.error, undefined, show(s));
      assert.equal(s.text, CANONICAL);
      assert.equal(s.finish, 'stop');
      assert.deepEqual(s.usage, { input: 11, output: 60 });
      assert.equal(s.model, 'small-model');
    });

    it('cutAfter 40: the SDK reads exactly 40 words, then throws', async (t) => {
      const up = await startModelUpstream(t, { realistic: true, fault: () => ({ cutAfter: 40 }) });
      const s = await openaiStream(`${up.url}/v1`);
      assert.ok(s.error, show(s));
      assert.equal(s.text, upTo(40));
    });

    it('endAfter 40, a clean end mid-answer: the SDK reads 40 words and ends WITHOUT an error (it does not require [DONE] or a finish_reason)', async (t) => {
      const up = await startModelUpstream(t, { realistic: true, fault: () => ({ endAfter: 40 }) });
      const s = await openaiStream(`${up.url}/v1`);
      assert.equal(s.error, undefined, show(s));
      assert.equal(s.text, upTo(40));
      assert.equal(s.finish, null);
      const f = await openaiFinal(`${up.url}/v1`);
      assert.match(String(f.error), /missing finish_reason/, 'only the accumulating helper notices');
    });

    it('errorEventAt 20: the SDK reads 20 words, then throws the error event as an APIError', async (t) => {
      const up = await startModelUpstream(t, { realistic: true, fault: () => ({ errorEventAt: 20 }) });
      const s = await openaiStream(`${up.url}/v1`);
      assert.ok(s.error instanceof OpenAI.APIError, show(s));
      assert.match(String((s.error as Error).message), /The server had an error/);
      assert.equal(s.text, upTo(20));
    });

    it('malformedAt 20: the SDK reads 20 words, then fails to parse the event', async (t) => {
      const up = await startModelUpstream(t, { realistic: true, fault: () => ({ malformedAt: 20 }) });
      const s = await openaiStream(`${up.url}/v1`);
      assert.ok(s.error instanceof SyntaxError, show(s));
      assert.equal(s.text, upTo(20));
    });

    it('stallAfter 20 for 400 ms: silence, then the rest', async (t) => {
      const up = await startModelUpstream(t, { fault: () => ({ stallAfter: 20, stallMs: 400 }) });
      const s = await openaiStream(`${up.url}/v1`);
      assert.equal(s.text, CANONICAL, show(s));
      assert.ok(s.ms >= 400, `${s.ms} ms`);
    });

    it('silentForMs and firstTokenAfterMs: nothing, then the whole answer', async (t) => {
      const silent = await startModelUpstream(t, { fault: () => ({ silentForMs: 400 }) });
      const late = await startModelUpstream(t, { fault: () => ({ firstTokenAfterMs: 400 }) });
      for (const up of [silent, late]) {
        const s = await openaiStream(`${up.url}/v1`);
        assert.equal(s.text, CANONICAL, show(s));
        assert.ok(s.ms >= 400, `${s.ms} ms`);
      }
    });

    for (const framing of ['cr', 'crlf'] as const) {
      it(`framing ${framing}: the SDK reads the whole answer`, async (t) => {
        const up = await startModelUpstream(t, { realistic: true, framing });
        const s = await openaiStream(`${up.url}/v1`, { includeUsage: true });
        assert.equal(s.error, undefined, show(s));
        assert.equal(s.text, CANONICAL);
        assert.equal(s.usage?.output, 60);
        const raw = await (await fetch(`${up.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ stream: true, messages: [] }) })).text();
        assert.equal(raw.includes('\n'), framing === 'crlf', 'bare CR framing has no LF at all');
        assert.ok(raw.endsWith(framing === 'cr' ? 'data: [DONE]\r\r' : 'data: [DONE]\r\n\r\n'));
      });
    }

    it('noSpaceDone and noSpaceFields: the SDK reads the whole answer and stops at data:[DONE]', async (t) => {
      const done = await startModelUpstream(t, { realistic: true, noSpaceDone: true });
      const fields = await startModelUpstream(t, { realistic: true, noSpaceFields: true, noSpaceDone: true });
      for (const up of [done, fields]) {
        const s = await openaiStream(`${up.url}/v1`);
        assert.equal(s.error, undefined, show(s));
        assert.equal(s.text, CANONICAL);
      }
      const raw = await (await fetch(`${fields.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ stream: true, messages: [] }) })).text();
      assert.ok(raw.startsWith('data:{') && raw.endsWith('\n\ndata:[DONE]\n\n'), raw.slice(-40));
    });

    it('doneMentionAt: the terminator is text inside a delta, and the SDK reads it as text', async (t) => {
      const up = await startModelUpstream(t, { realistic: true, doneMentionAt: 30 });
      const s = await openaiStream(`${up.url}/v1`);
      const expected = [...TOKENS.slice(0, 30), TERMINATOR_MENTION.openai, ...TOKENS.slice(31)].join('');
      assert.equal(s.text, expected, show(s));
      const raw = await (await fetch(`${up.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ stream: true, messages: [] }) })).text();
      assert.equal(raw.split('data: [DONE]').length - 1, 2, 'the literal in the text, and the real terminator');
    });

    it('choices 2: both choices interleaved; cut after choice 0 finished, choice 1 is short and the SDK reading chunks cannot tell', async (t) => {
      const whole = await startModelUpstream(t, { realistic: true });
      const s = await openaiStream(`${whole.url}/v1`, { n: 2 });
      assert.deepEqual(s.choices, [{ text: TWO_CHOICES[0], finish: 'stop' }, { text: TWO_CHOICES[1], finish: 'stop' }]);
      const cut = await startModelUpstream(t, { realistic: true, fault: () => ({ cutAfter: twoChoiceEventsBefore(40) }) });
      const c = await openaiStream(`${cut.url}/v1`, { n: 2 });
      assert.ok(c.error, 'the reset reaches the SDK');
      assert.deepEqual(c.choices, [{ text: TWO_CHOICES[0], finish: 'stop' }, { text: upTo(40), finish: null }]);
    });

    it('a tool call: finalChatCompletion has the call whole; cut after 10 fragments, the SDK throws with half the arguments', async (t) => {
      const up = await startModelUpstream(t, { realistic: true, toolCall: WEATHER });
      const s = await openaiFinal(`${up.url}/v1`, { tools: [WEATHER_TOOL] });
      assert.equal(s.error, undefined, show(s));
      assert.equal(s.finish, 'tool_calls');
      assert.equal(s.toolCalls.length, 1);
      assert.equal(s.toolCalls[0]!.name, 'get_weather');
      assert.deepEqual(JSON.parse(s.toolCalls[0]!.arguments), JSON.parse(WEATHER.arguments));
      assert.ok(argumentFragments(WEATHER).length > 20, 'streamed in many fragments');
      const plain = await startModelUpstream(t, { realistic: true, toolCall: WEATHER });
      const text = await openaiStream(`${plain.url}/v1`);
      assert.equal(text.text, CANONICAL, 'without tools in the request, the model answers in text');
      const cut = await startModelUpstream(t, { realistic: true, toolCall: WEATHER, fault: () => ({ cutAfter: 1 + 10 }) });
      const c = await openaiFinal(`${cut.url}/v1`, { tools: [WEATHER_TOOL] });
      assert.ok(c.error, show(c));
      assert.equal(c.toolCalls[0]?.arguments, argumentFragments(WEATHER).slice(0, 10).join(''));
    });

    it('reasoning: reasoning_content deltas, then content', async (t) => {
      const up = await startModelUpstream(t, { realistic: true, reasoning: 12 });
      const s = await openaiStream(`${up.url}/v1`, { includeUsage: true });
      assert.equal(s.reasoning, reasoningTokens(12).join(''), show(s));
      assert.equal(s.text, CANONICAL);
      const cut = await startModelUpstream(t, { realistic: true, reasoning: 12, fault: () => ({ cutAfter: 6 }) });
      const c = await openaiStream(`${cut.url}/v1`);
      assert.ok(c.error);
      assert.equal(c.reasoning, reasoningTokens(6).join(''));
      assert.equal(c.text, '');
    });

    it('prefill with continue_final_message: continues, restarts, or overlaps as told; ignored without it', async (t) => {
      const prefill = [{ role: 'user' as const, content: 'count' }, { role: 'assistant' as const, content: upTo(40) }];
      const body = (extra: object) => JSON.stringify({ stream: true, messages: prefill, ...extra });
      const read = async (url: string, extra: object) => {
        const raw = await (await fetch(`${url}/v1/chat/completions`, { method: 'POST', body: body(extra) })).text();
        return raw.split('\n\n').filter((e) => e.startsWith('data: {')).map((e) => JSON.parse(e.slice(6)).choices[0]?.delta.content ?? '').join('');
      };
      const cont = await startModelUpstream(t, { prefill: 'continues' });
      assert.equal(await read(cont.url, { continue_final_message: true }), TOKENS.slice(40).join(''));
      assert.equal(await read(cont.url, {}), CANONICAL, 'OpenAI ignores a prefill without continue_final_message');
      const restarts = await startModelUpstream(t, { prefill: 'restarts' });
      assert.equal(await read(restarts.url, { continue_final_message: true }), CANONICAL);
      const overlaps = await startModelUpstream(t, { prefill: 'overlaps' });
      assert.equal(await read(overlaps.url, { continue_final_message: true }), TOKENS.slice(39).join(''));
    });
  });

  describe('Anthropic', { concurrency: true }, () => {
    it('a healthy realistic stream (with ping): finalMessage and create read the whole message', async (t) => {
      const up = await startModelUpstream(t, { realistic: true });
      const s = await anthropicStream(up.url);
      assert.equal(s.error, undefined, show(s));
      assert.equal(s.text, CANONICAL);
      assert.equal(s.finish, 'end_turn');
      assert.equal(s.message?.content.length, 1);
      assert.equal(s.usage?.output, 60);
      const c = await anthropicCreate(up.url);
      assert.equal(c.text, CANONICAL);
      assert.ok(c.ended);
      const raw = await (await fetch(`${up.url}/v1/messages`, { method: 'POST', body: JSON.stringify({ stream: true, messages: [] }) })).text();
      assert.match(raw, /^event: message_start\n.*\n\nevent: content_block_start\n.*\n\nevent: ping\ndata: \{"type":"ping"\}\n\nevent: content_block_delta\n/);
    });

    it('cutAfter 40: the SDK reads 40 words, then throws', async (t) => {
      const up = await startModelUpstream(t, { realistic: true, fault: () => ({ cutAfter: 40 }) });
      const s = await anthropicStream(up.url);
      assert.ok(s.error, show(s));
      assert.equal(s.text, upTo(40));
    });

    it('endAfter 40, a clean end mid-message: messages.create iteration ends WITHOUT an error; finalMessage throws (no message_stop), but not an APIError', async (t) => {
      const up = await startModelUpstream(t, { realistic: true, fault: () => ({ endAfter: 40 }) });
      const c = await anthropicCreate(up.url);
      assert.equal(c.error, undefined, show(c));
      assert.equal(c.text, upTo(40));
      assert.equal(c.finish, null);
      assert.equal(c.ended, false);
      const s = await anthropicStream(up.url);
      assert.ok(s.error instanceof Anthropic.AnthropicError && !(s.error instanceof Anthropic.APIError), show(s));
      assert.match(String(s.error), /stream ended without producing a Message/);
    });

    it('an error data line without its event: line is skipped by the SDK (it reads only named events)', async (t) => {
      const raw = await startRawUpstream(t, (socket) => {
        const body =
          `event: message_start\ndata: ${JSON.stringify({ type: 'message_start', message: { id: 'm', type: 'message', role: 'assistant', model: 'c', content: [], stop_reason: null, usage: { input_tokens: 1, output_tokens: 1 } } })}\n\n` +
          `event: content_block_start\ndata: ${JSON.stringify({ type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } })}\n\n` +
          `data: ${JSON.stringify({ type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } })}\n\n`;
        socket.end(`HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
      });
      const s = await anthropicCreate(raw.url);
      assert.equal(s.error, undefined, `no error: the unnamed error event was skipped: ${show(s)}`);
    });

    it('errorEventAt 20: the SDK throws an overloaded_error after 20 words', async (t) => {
      const up = await startModelUpstream(t, { realistic: true, fault: () => ({ errorEventAt: 20 }) });
      const s = await anthropicStream(up.url);
      assert.ok(s.error instanceof Anthropic.APIError, show(s));
      assert.match((s.error as Error).message, /overloaded_error|Overloaded/);
      assert.equal(s.text, upTo(20));
    });

    it('malformedAt 20: the SDK reads the malformed event (it keeps its event: line) and throws', async (t) => {
      const up = await startModelUpstream(t, { realistic: true, fault: () => ({ malformedAt: 20 }) });
      const s = await anthropicStream(up.url);
      assert.ok(s.error, show(s));
      assert.equal(s.text, upTo(20));
    });

    for (const framing of ['cr', 'crlf'] as const) {
      it(`framing ${framing}: the SDK reads the whole message`, async (t) => {
        const up = await startModelUpstream(t, { realistic: true, framing });
        const s = await anthropicStream(up.url);
        assert.equal(s.error, undefined, show(s));
        assert.equal(s.text, CANONICAL);
        assert.equal(s.finish, 'end_turn');
      });
    }

    it('a tool_use after a text preface: finalMessage has both blocks, the input whole; cut mid-arguments, the SDK throws', async (t) => {
      const tool = { ...WEATHER, preface: "I'll check the weather in Paris. " };
      const up = await startModelUpstream(t, { realistic: true, toolCall: tool });
      const s = await anthropicStream(up.url, { tools: [ANTHROPIC_WEATHER_TOOL] });
      assert.equal(s.error, undefined, show(s));
      assert.equal(s.finish, 'tool_use');
      assert.deepEqual(s.message?.content.map((b) => b.type), ['text', 'tool_use']);
      assert.equal(s.text, tool.preface);
      assert.deepEqual(JSON.parse(s.toolCalls[0]!.arguments), JSON.parse(WEATHER.arguments));
      const words = tool.preface.split(' ').length - 1;
      const cut = await startModelUpstream(t, { realistic: true, toolCall: tool, fault: () => ({ cutAfter: words + 10 }) });
      const c = await anthropicStream(cut.url, { tools: [ANTHROPIC_WEATHER_TOOL] });
      assert.ok(c.error, show(c));
      assert.equal(c.toolCalls[0]?.arguments, argumentFragments(WEATHER).slice(0, 10).join(''));
    });

    it('thinking: a thinking block with its signature, then the text', async (t) => {
      const up = await startModelUpstream(t, { realistic: true, reasoning: 8 });
      const s = await anthropicStream(up.url, { thinking: true });
      assert.equal(s.error, undefined, show(s));
      assert.deepEqual(s.message?.content.map((b) => b.type), ['thinking', 'text']);
      assert.equal(s.reasoning, reasoningTokens(8).join(''));
      assert.ok(s.message?.content[0]?.type === 'thinking' && s.message.content[0].signature.length > 0);
      assert.equal(s.text, CANONICAL);
    });

    it('prefill: continues after the prefill, refuses trailing whitespace, rejects, restarts, overlaps', async (t) => {
      const ask = (prefill: string) => ({ messages: [{ role: 'user' as const, content: 'count' }, { role: 'assistant' as const, content: prefill }] });
      const cont = await startModelUpstream(t, { prefill: 'continues' });
      assert.equal((await anthropicStream(cont.url, ask(upTo(40).trimEnd()))).text, ' ' + TOKENS.slice(40).join(''));
      const ws = await anthropicStream(cont.url, ask(upTo(40)));
      assert.ok(ws.error instanceof Anthropic.BadRequestError && /trailing whitespace/.test(ws.error.message), show(ws));
      const rejects = await startModelUpstream(t, { prefill: 'rejects' });
      const r = await anthropicStream(rejects.url, ask(upTo(40).trimEnd()));
      assert.ok(r.error instanceof Anthropic.BadRequestError && /does not support assistant message prefill/.test(r.error.message), show(r));
      const restarts = await startModelUpstream(t, { prefill: 'restarts' });
      assert.equal((await anthropicStream(restarts.url, ask(upTo(40).trimEnd()))).text, CANONICAL);
      const overlaps = await startModelUpstream(t, { prefill: 'overlaps' });
      assert.equal((await anthropicStream(overlaps.url, ask(upTo(40).trimEnd()))).text, TOKENS.slice(39).join(''));
      const blocks = await anthropicStream(cont.url, { messages: [{ role: 'user', content: 'count' }, { role: 'assistant', content: [{ type: 'text', text: upTo(40).trimEnd() }] }] });
      assert.equal(blocks.text, ' ' + TOKENS.slice(40).join(''), 'a prefill given as text blocks is read too');
    });

    it('a fault recurs in a continuation at the same point of the answer: at once from word 40, after 20 words from word 20', async (t) => {
      const up = await startModelUpstream(t, { prefill: 'continues', fault: () => ({ cutAfter: 40 }) });
      const ask = (prefill: string) => ({ messages: [{ role: 'user' as const, content: 'count' }, { role: 'assistant' as const, content: prefill }] });
      const from40 = await anthropicStream(up.url, ask(upTo(40).trimEnd()));
      assert.ok(from40.error, show(from40));
      assert.equal(from40.text, ' ', 'only the rest of word 39, then the cut');
      const from20 = await anthropicStream(up.url, ask(upTo(20).trimEnd()));
      assert.ok(from20.error, show(from20));
      assert.equal(from20.text, ' ' + TOKENS.slice(20, 40).join(''));
      const restarts = await startModelUpstream(t, { prefill: 'restarts', fault: () => ({ errorEventAt: 20 }) });
      const again = await anthropicStream(restarts.url, ask(upTo(40).trimEnd()));
      assert.equal(again.text, upTo(20), 'a restarted answer meets the fault where a first answer does');
    });

    it('doneMentionAt: message_stop inside a text delta is read as text', async (t) => {
      const up = await startModelUpstream(t, { realistic: true, doneMentionAt: 30 });
      const s = await anthropicStream(up.url);
      assert.equal(s.text, [...TOKENS.slice(0, 30), TERMINATOR_MENTION.anthropic, ...TOKENS.slice(31)].join(''), show(s));
    });
  });

  describe('Ollama /api/chat', { concurrency: true }, () => {
    it('a healthy stream: NDJSON lines, the last with "done": true and the counts', async (t) => {
      const up = await startModelUpstream(t);
      const s = await ollamaChat(up.url);
      assert.equal(s.error, undefined, show(s));
      assert.equal(s.text, CANONICAL);
      assert.ok(s.ended);
      assert.equal(s.finish, 'stop');
      assert.deepEqual(s.usage, { input: 11, output: 60 });
      const res = await fetch(`${up.url}/api/chat`, { method: 'POST', body: JSON.stringify({ model: 'm', messages: [] }) });
      assert.equal(res.headers.get('content-type'), 'application/x-ndjson');
      const lines = (await res.text()).trimEnd().split('\n').map((l) => JSON.parse(l));
      assert.equal(lines.length, 61);
      assert.deepEqual(Object.keys(lines[0]), ['model', 'created_at', 'message', 'done']);
      assert.equal(lines.at(-1).done, true);
      const plain = await (await fetch(`${up.url}/api/chat`, { method: 'POST', body: JSON.stringify({ model: 'm', messages: [], stream: false }) })).json();
      assert.equal(plain.message.content, CANONICAL);
    });

    it('cut, error line, malformed line: what the reader saw before it threw', async (t) => {
      for (const [fault, words] of [[{ cutAfter: 40 }, 40], [{ errorEventAt: 20 }, 20], [{ malformedAt: 20 }, 20]] as const) {
        const up = await startModelUpstream(t, { fault: () => fault });
        const s = await ollamaChat(up.url);
        assert.ok(s.error, `${JSON.stringify(fault)}: ${show(s)}`);
        assert.equal(s.text, upTo(words), JSON.stringify(fault));
        assert.ok(!s.ended);
      }
    });

    it('thinking and tool calls: message.thinking, and message.tool_calls whole in one line', async (t) => {
      const thinker = await startModelUpstream(t, { reasoning: 5 });
      const s = await ollamaChat(thinker.url);
      assert.equal(s.reasoning, reasoningTokens(5).join(''));
      assert.equal(s.text, CANONICAL);
      const caller = await startModelUpstream(t, { toolCall: WEATHER });
      const c = await ollamaChat(caller.url, { tools: [WEATHER_TOOL] });
      assert.equal(c.toolCalls.length, 1);
      assert.deepEqual(JSON.parse(c.toolCalls[0]!.arguments), JSON.parse(WEATHER.arguments));
    });

    it('prefill: continues (Ollama continues a trailing assistant message), restarts, overlaps', async (t) => {
      const messages = [{ role: 'user', content: 'count' }, { role: 'assistant', content: upTo(40) }];
      const cont = await startModelUpstream(t, { prefill: 'continues' });
      assert.equal((await ollamaChat(cont.url, { messages })).text, TOKENS.slice(40).join(''));
      const restarts = await startModelUpstream(t, { prefill: 'restarts' });
      assert.equal((await ollamaChat(restarts.url, { messages })).text, CANONICAL);
      const overlaps = await startModelUpstream(t, { prefill: 'overlaps' });
      assert.equal((await ollamaChat(overlaps.url, { messages })).text, TOKENS.slice(39).join(''));
    });
  });
});
