import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { inspectBody } from '../../sidecar/proxy/read-request.js';

const body = (o: object) => Buffer.from(JSON.stringify(o));

describe('request body inspection', () => {
  it('reads model and the output token cap from OpenAI, Anthropic and Ollama bodies', () => {
    assert.deepEqual(inspectBody(body({ model: 'gpt-4o', max_tokens: 100, messages: [], stream: true })), { model: 'gpt-4o', maxTokens: 100, stream: true, choices: undefined, usageAsked: undefined, jsonMode: undefined });
    assert.deepEqual(inspectBody(body({ model: 'o3', max_completion_tokens: 50, response_format: { type: 'json_schema' } })), { model: 'o3', maxTokens: 50, stream: undefined, choices: undefined, usageAsked: undefined, jsonMode: true });
    assert.deepEqual(inspectBody(body({ model: 'llama3.1:8b', options: { num_predict: 64 }, stream: false, format: 'json' })), { model: 'llama3.1:8b', maxTokens: 64, stream: false, choices: undefined, usageAsked: undefined, jsonMode: true });
    assert.deepEqual(inspectBody(body({ messages: [] })), { model: undefined, maxTokens: undefined, stream: undefined, choices: undefined, usageAsked: undefined, jsonMode: undefined });
    assert.equal(inspectBody(body({ model: 'gpt-4o', n: 2, stream: true })).choices, 2, "OpenAI's n: a stream must finish each choice");
    assert.equal(inspectBody(body({ n: 1 })).choices, undefined);
    assert.equal(inspectBody(body({ n: 1e6 })).choices, 128, 'at most the choices the sidecar keeps track of');
    assert.equal(inspectBody(body({ n: '2' })).choices, undefined);
    assert.equal(inspectBody(body({ stream: true, stream_options: { include_usage: true } })).usageAsked, true, 'the app asked for the usage itself');
    assert.equal(inspectBody(body({ model: 'gpt-5', max_output_tokens: 300 })).maxTokens, 300, "the Responses API's output cap");
    assert.deepEqual(inspectBody(Buffer.from('not json')), {});
    assert.deepEqual(inspectBody(null), {});
  });

  it('peeks at the edges of a large body instead of parsing it whole', () => {
    const long = 'x'.repeat(1024 * 1024);
    assert.deepEqual(inspectBody(body({ model: 'gpt-4o', messages: [{ role: 'user', content: long }], max_tokens: 7 })), { model: 'gpt-4o', maxTokens: 7, stream: undefined });
    assert.deepEqual(inspectBody(body({ messages: [{ role: 'user', content: long }], model: 'claude-x', max_tokens: 9, stream: true })), { model: 'claude-x', maxTokens: 9, stream: true });
    assert.equal(inspectBody(body({ messages: [{ role: 'user', content: 'a "model": "fake" quote ' + long }] })).model, undefined, 'quotes inside content are escaped, so they never match');
  });
});
