import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { anthropic } from '../../sidecar/proxy/dialects/anthropic.js';
import { generic } from '../../sidecar/proxy/dialects/generic.js';
import { ollamaChat } from '../../sidecar/proxy/dialects/ollama.js';
import { openai as openaiDialect } from '../../sidecar/proxy/dialects/openai.js';
import { parseObject } from '../../sidecar/proxy/dialects/shared.js';
import type { Dialect } from '../../sidecar/proxy/dialects/types.js';
import { invalidAnswer, type ValidationSettings } from '../../sidecar/proxy/answers/validate-answer.js';

const on = { json: true, refusal: true, emptyContent: true };
/** The attempt's way: the answer parsed once, then judged. */
const check = (dialect: Dialect, text: string, jsonMode: boolean, settings: ValidationSettings) => invalidAnswer(dialect, parseObject(text), jsonMode, settings);
const openai = (message: object) => JSON.stringify({ choices: [{ index: 0, message: { role: 'assistant', ...message }, finish_reason: 'stop' }] });

describe('answer validation', () => {
  it('flags empty content unless the model called tools', () => {
    assert.equal(check(openaiDialect, openai({ content: '' }), false, on), 'empty content');
    assert.equal(check(openaiDialect, openai({ content: null, tool_calls: [{ id: 'c1', type: 'function' }] }), false, on), undefined);
    assert.equal(check(anthropic, JSON.stringify({ content: [{ type: 'tool_use', id: 't' }] }), false, on), undefined);
    assert.equal(check(ollamaChat, JSON.stringify({ message: { content: '  ' }, done: true }), false, on), 'empty content');
    assert.equal(check(openaiDialect, openai({ content: '' }), false, { ...on, emptyContent: false }), undefined);
  });

  it('requires valid JSON content only when the request asked for JSON', () => {
    assert.match(check(openaiDialect, openai({ content: 'Sure! {"a": 1}' }), true, on)!, /not valid JSON/);
    assert.equal(check(openaiDialect, openai({ content: '{"a": 1}' }), true, on), undefined);
    assert.equal(check(openaiDialect, openai({ content: 'Sure! {"a": 1}' }), false, on), undefined);
  });

  it('flags refusals only when enabled', () => {
    assert.equal(check(openaiDialect, openai({ content: null, refusal: 'I cannot help with that.' }), false, on), 'the model refused');
    assert.equal(check(anthropic, JSON.stringify({ content: [{ type: 'text', text: "I'm sorry, but I can't help with that." }] }), false, on), 'the model refused');
    assert.equal(check(anthropic, JSON.stringify({ content: [{ type: 'text', text: "I'm sorry, but I can't help with that." }] }), false, { ...on, refusal: false }), undefined);
  });

  it('leaves answers that are not completions alone', () => {
    assert.equal(check(openaiDialect, JSON.stringify({ object: 'list', data: [] }), false, on), undefined);
    assert.equal(check(openaiDialect, 'not json', true, on), undefined);
  });
});

describe('usage in a plain answer', () => {
  it("reads each API's counts from the parsed answer, as the stream reader finds them in the event that reports them", () => {
    const answers: [Dialect, object, { input: number; output: number }][] = [
      [openaiDialect, { choices: [], usage: { prompt_tokens: 12, completion_tokens: 16, total_tokens: 28 } }, { input: 12, output: 16 }],
      [anthropic, { content: [], usage: { input_tokens: 7, output_tokens: 3 } }, { input: 7, output: 3 }],
      [ollamaChat, { message: { content: 'hi' }, done: true, prompt_eval_count: 5, eval_count: 9 }, { input: 5, output: 9 }],
      [generic, { output: [], usage: { input_tokens: 2, output_tokens: 4 } }, { input: 2, output: 4 }],
      [generic, { response: 'hi', prompt_eval_count: 1, eval_count: 0 }, { input: 1, output: 0 }],
    ];
    for (const [dialect, answer, usage] of answers) {
      const text = JSON.stringify(answer);
      assert.deepEqual(dialect.answerUsage(parseObject(text)!), usage, text);
    }
    // The same counts as a stream reports them: OpenAI's usage-only last chunk, Anthropic's message_delta, Ollama's done line.
    const events: [Dialect, string, object, { input: number; output: number }][] = [
      [openaiDialect, 'message', { object: 'chat.completion.chunk', choices: [], usage: { prompt_tokens: 12, completion_tokens: 16, total_tokens: 28 } }, { input: 12, output: 16 }],
      [anthropic, 'message_delta', { type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { input_tokens: 7, output_tokens: 3 } }, { input: 7, output: 3 }],
      [ollamaChat, 'message', { message: { role: 'assistant', content: '' }, done: true, prompt_eval_count: 5, eval_count: 9 }, { input: 5, output: 9 }],
    ];
    for (const [dialect, event, data, usage] of events) {
      const text = JSON.stringify(data);
      assert.deepEqual(dialect.readEvent(event, text).usage, usage, text);
      assert.deepEqual(dialect.answerUsage(parseObject(text)!), usage, `${text}, read as a plain answer`);
    }
  });

  it('reports none when no count is there, and takes no count that is not a whole number of tokens', () => {
    assert.equal(openaiDialect.answerUsage({ choices: [] }), undefined);
    assert.equal(openaiDialect.answerUsage({ usage: null }), undefined);
    assert.equal(openaiDialect.answerUsage({ usage: { prompt_tokens: -1, completion_tokens: '9' } }), undefined);
    assert.deepEqual(openaiDialect.answerUsage({ usage: { prompt_tokens: 1.5, completion_tokens: 2 ** 60 } }), undefined);
    assert.deepEqual(openaiDialect.answerUsage({ usage: { prompt_tokens: 3, completion_tokens: Infinity } }), { input: 3, output: 0 });
  });

  it('never throws, whatever JSON the answer is', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const json = parseObject(JSON.stringify(value));
        if (json === undefined) return;
        for (const dialect of [openaiDialect, anthropic, ollamaChat, generic]) {
          const usage = dialect.answerUsage(json);
          if (usage) assert.ok(Number.isSafeInteger(usage.input) && Number.isSafeInteger(usage.output) && usage.input >= 0 && usage.output >= 0);
        }
      }),
      { numRuns: 300 },
    );
  });
});
