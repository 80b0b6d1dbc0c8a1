import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { anthropic } from '../../sidecar/proxy/dialects/anthropic.js';
import { ollamaChat } from '../../sidecar/proxy/dialects/ollama.js';
import { openai as openaiDialect } from '../../sidecar/proxy/dialects/openai.js';
import { invalidAnswer } from '../../sidecar/proxy/validate-answer.js';

const on = { json: true, refusal: true, emptyContent: true };
const openai = (message: object) => JSON.stringify({ choices: [{ index: 0, message: { role: 'assistant', ...message }, finish_reason: 'stop' }] });

describe('answer validation', () => {
  it('flags empty content unless the model called tools', () => {
    assert.equal(invalidAnswer(openaiDialect, openai({ content: '' }), false, on), 'empty content');
    assert.equal(invalidAnswer(openaiDialect, openai({ content: null, tool_calls: [{ id: 'c1', type: 'function' }] }), false, on), undefined);
    assert.equal(invalidAnswer(anthropic, JSON.stringify({ content: [{ type: 'tool_use', id: 't' }] }), false, on), undefined);
    assert.equal(invalidAnswer(ollamaChat, JSON.stringify({ message: { content: '  ' }, done: true }), false, on), 'empty content');
    assert.equal(invalidAnswer(openaiDialect, openai({ content: '' }), false, { ...on, emptyContent: false }), undefined);
  });

  it('requires valid JSON content only when the request asked for JSON', () => {
    assert.match(invalidAnswer(openaiDialect, openai({ content: 'Sure! {"a": 1}' }), true, on)!, /not valid JSON/);
    assert.equal(invalidAnswer(openaiDialect, openai({ content: '{"a": 1}' }), true, on), undefined);
    assert.equal(invalidAnswer(openaiDialect, openai({ content: 'Sure! {"a": 1}' }), false, on), undefined);
  });

  it('flags refusals only when enabled', () => {
    assert.equal(invalidAnswer(openaiDialect, openai({ content: null, refusal: 'I cannot help with that.' }), false, on), 'the model refused');
    assert.equal(invalidAnswer(anthropic, JSON.stringify({ content: [{ type: 'text', text: "I'm sorry, but I can't help with that." }] }), false, on), 'the model refused');
    assert.equal(invalidAnswer(anthropic, JSON.stringify({ content: [{ type: 'text', text: "I'm sorry, but I can't help with that." }] }), false, { ...on, refusal: false }), undefined);
  });

  it('leaves answers that are not completions alone', () => {
    assert.equal(invalidAnswer(openaiDialect, JSON.stringify({ object: 'list', data: [] }), false, on), undefined);
    assert.equal(invalidAnswer(openaiDialect, 'not json', true, on), undefined);
  });
});
