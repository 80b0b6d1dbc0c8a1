import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { dialectFor } from '../../sidecar/proxy/dialects/dialect.js';
import { anthropic } from '../../sidecar/proxy/dialects/anthropic.js';
import { generic } from '../../sidecar/proxy/dialects/generic.js';
import { ollamaChat } from '../../sidecar/proxy/dialects/ollama.js';
import { openai } from '../../sidecar/proxy/dialects/openai.js';
import { openaiResponses } from '../../sidecar/proxy/dialects/openai-responses.js';
import { inspectBody } from '../../sidecar/proxy/inbound/read-request.js';

const body = (o: object) => Buffer.from(JSON.stringify(o));
/** The fields read, without those left undefined. */
const read = (...args: Parameters<typeof inspectBody>) => JSON.parse(JSON.stringify(inspectBody(...args))) as Record<string, unknown>;

describe('request body inspection, by the request\'s dialect', () => {
  it('reads each API\'s own fields: Chat Completions, Responses, Anthropic, Ollama', () => {
    assert.deepEqual(read(body({ model: 'gpt-4o', max_tokens: 100, messages: [], stream: true }), openai), { model: 'gpt-4o', maxTokens: 100, stream: true });
    assert.deepEqual(read(body({ model: 'o3', max_completion_tokens: 50, max_tokens: 9, response_format: { type: 'json_schema' } }), openai), { model: 'o3', maxTokens: 50, jsonMode: true });
    assert.deepEqual(read(body({ model: 'gpt-5', max_output_tokens: 300, text: { format: { type: 'json_schema', name: 'x', schema: {} } }, stream: true }), openaiResponses), { model: 'gpt-5', maxTokens: 300, stream: true, jsonMode: true });
    assert.deepEqual(read(body({ model: 'gpt-5', max_tokens: 300, response_format: { type: 'json_object' } }), openaiResponses), { model: 'gpt-5' }, 'not fields of the Responses API');
    assert.deepEqual(read(body({ model: 'claude-x', max_tokens: 64, stream: true, n: 3 }), anthropic), { model: 'claude-x', maxTokens: 64, stream: true });
    assert.deepEqual(read(body({ model: 'llama3.1:8b', options: { num_predict: 64 }, stream: false, format: 'json' }), ollamaChat), { model: 'llama3.1:8b', maxTokens: 64, stream: false, jsonMode: true });
    assert.deepEqual(read(body({ model: 'llama3.1:8b', format: null }), ollamaChat), { model: 'llama3.1:8b' });
    assert.deepEqual(read(body({ max_output_tokens: 5, options: { num_predict: 7 } }), generic), { maxTokens: 5 }, 'an API the sidecar does not know: any family\'s cap');
    assert.deepEqual(read(body({ messages: [] }), openai), {});
  });

  it('reads OpenAI\'s n and stream_options, bounded', () => {
    assert.equal(inspectBody(body({ model: 'gpt-4o', n: 2, stream: true }), openai).choices, 2, "OpenAI's n: a stream must finish each choice");
    assert.equal(inspectBody(body({ n: 1 }), openai).choices, undefined);
    assert.equal(inspectBody(body({ n: 1e6 }), openai).choices, 128, 'at most the choices the sidecar keeps track of');
    assert.equal(inspectBody(body({ n: '2' }), openai).choices, undefined);
    assert.equal(inspectBody(body({ stream: true, stream_options: { include_usage: true } }), openai).usageAsked, true, 'the app asked for the usage itself');
    assert.equal(inspectBody(body({ model: 'x'.repeat(10_000) }), openai).model?.length, 256, 'a model name is bounded once, here');
  });

  it('reads nothing the sidecar would act on at a path that is not a text completion', () => {
    const embeddings = dialectFor('openai', '/v1/embeddings');
    assert.deepEqual(read(body({ model: 'text-embedding-3-small', input: ['a'], max_tokens: 5, stream: true }), embeddings), { model: 'text-embedding-3-small', stream: true });
  });

  it('has no fields in a body that is not a JSON object', () => {
    for (const raw of [Buffer.from('not json'), Buffer.from('{"a":'), Buffer.from('[1]'), null]) assert.deepEqual(inspectBody(raw, openai), {});
  });

  it('reads a large body\'s short members wherever they are: stream after 4 KiB of tools, no nested stream, the last model (red team, issue 25)', () => {
    const long = 'x'.repeat(300 * 1024);
    const tools = Array.from({ length: 200 }, (_, i) => ({ type: 'function', function: { name: `f${i}`, parameters: { type: 'object', properties: { stream: { type: 'boolean' } } } } }));
    assert.deepEqual(read(Buffer.from(JSON.stringify({ messages: [{ role: 'user', content: long }], model: 'gpt-4o', tools, stream: true, max_tokens: 9 })), openai), { model: 'gpt-4o', stream: true, maxTokens: 9 }, 'openai-python writes stream after the tools');
    assert.deepEqual(read(Buffer.from(`{"model":"m","metadata":{"stream":true},"messages":[{"role":"user","content":"${long}"}]}`), openai), { model: 'm' }, 'a nested stream is not the request\'s');
    assert.equal(inspectBody(Buffer.from(`{"model":"cheap","messages":[{"role":"user","content":"${long}"}],"model":"gpt-4o"}`), openai).model, 'gpt-4o', 'the model the upstream reads: the last');
  });

  it('reads the edges of a large body too, for the names its dialect gives the cap', () => {
    const long = 'x'.repeat(1024 * 1024);
    assert.deepEqual(read(body({ model: 'gpt-4o', messages: [{ role: 'user', content: long }], max_tokens: 7 }), openai), { model: 'gpt-4o', maxTokens: 7 });
    assert.deepEqual(read(body({ messages: [{ role: 'user', content: long }], model: 'claude-x', max_tokens: 9, stream: true }), anthropic), { model: 'claude-x', maxTokens: 9, stream: true });
    assert.deepEqual(read(body({ input: long, model: 'gpt-5', max_output_tokens: 11 }), openaiResponses), { model: 'gpt-5', maxTokens: 11 });
    assert.deepEqual(read(body({ input: long, model: 'gpt-5', max_tokens: 11 }), openaiResponses), { model: 'gpt-5' });
    assert.equal(inspectBody(body({ messages: [{ role: 'user', content: 'a "model": "fake" quote ' + long }] }), openai).model, undefined, 'quotes inside content are escaped, so they never match');
  });
});
