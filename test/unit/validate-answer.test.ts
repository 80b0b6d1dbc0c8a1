import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { invalidAnswer } from '../../sidecar/proxy/validate-answer.js';

const on = { json: true, refusal: true, emptyContent: true };
const openai = (message: object) => JSON.stringify({ choices: [{ index: 0, message: { role: 'assistant', ...message }, finish_reason: 'stop' }] });

describe('answer validation', () => {
  it('flags empty content unless the model called tools', () => {
    assert.equal(invalidAnswer('openai', openai({ content: '' }), false, on), 'empty content');
    assert.equal(invalidAnswer('openai', openai({ content: null, tool_calls: [{ id: 'c1', type: 'function' }] }), false, on), undefined);
    assert.equal(invalidAnswer('anthropic', JSON.stringify({ content: [{ type: 'tool_use', id: 't' }] }), false, on), undefined);
    assert.equal(invalidAnswer('ollama-chat', JSON.stringify({ message: { content: '  ' }, done: true }), false, on), 'empty content');
    assert.equal(invalidAnswer('openai', openai({ content: '' }), false, { ...on, emptyContent: false }), undefined);
  });

  it('requires valid JSON content only when the request asked for JSON', () => {
    assert.match(invalidAnswer('openai', openai({ content: 'Sure! {"a": 1}' }), true, on)!, /not valid JSON/);
    assert.equal(invalidAnswer('openai', openai({ content: '{"a": 1}' }), true, on), undefined);
    assert.equal(invalidAnswer('openai', openai({ content: 'Sure! {"a": 1}' }), false, on), undefined);
  });

  it('flags refusals only when enabled', () => {
    assert.equal(invalidAnswer('openai', openai({ content: null, refusal: 'I cannot help with that.' }), false, on), 'the model refused');
    assert.equal(invalidAnswer('anthropic', JSON.stringify({ content: [{ type: 'text', text: "I'm sorry, but I can't help with that." }] }), false, on), 'the model refused');
    assert.equal(invalidAnswer('anthropic', JSON.stringify({ content: [{ type: 'text', text: "I'm sorry, but I can't help with that." }] }), false, { ...on, refusal: false }), undefined);
  });

  it('leaves answers that are not completions alone', () => {
    assert.equal(invalidAnswer('openai', JSON.stringify({ object: 'list', data: [] }), false, on), undefined);
    assert.equal(invalidAnswer('openai', 'not json', true, on), undefined);
  });
});
