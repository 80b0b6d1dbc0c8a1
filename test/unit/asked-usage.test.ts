/**
 * The usage the sidecar asks a Chat Completions stream for when the app did
 * not: the request asks for it whatever the body's shape, and what it adds to
 * the stream is taken out again, never text that merely mentions it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { dialectFor } from '../../sidecar/proxy/dialects/dialect.js';
import { openai } from '../../sidecar/proxy/dialects/openai.js';
import { openaiResponses } from '../../sidecar/proxy/dialects/openai-responses.js';
import { EventReader } from '../../sidecar/proxy/streams/stream-events.js';
import { sse } from '../../sidecar/proxy/streams/stream-framing.js';

/** The body the sidecar sends for a stream at `path`, as the path's dialect asks it for its usage. */
const ask = (path: string, body: object | string) => dialectFor('openai', path).askUsage?.(Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)));
const events = (text: string) => new EventReader(sse, openai).push(Buffer.from(text));

describe('asking a stream for its usage', () => {
  it('adds stream_options.include_usage to a Chat Completions or Completions stream, keeping every other field', () => {
    const request = { model: 'm', messages: [{ role: 'user', content: 'say "stream_options"' }], stream: true };
    assert.deepEqual(JSON.parse(ask('/v1/chat/completions', request)!.toString()), { stream_options: { include_usage: true }, ...request });
    assert.deepEqual(JSON.parse(ask('/v1/completions?x=1', { prompt: 'p', stream: true })!.toString()), { stream_options: { include_usage: true }, prompt: 'p', stream: true });
  });

  it('sends a body with stream_options of its own as it is: written again, its numbers could change', () => {
    assert.equal(ask('/v1/chat/completions', '{"model":"m","stream":true,"seed":12345678901234567890,"stream_options":{"include_obfuscation":false}}'), undefined);
    assert.equal(ask('/v1/chat/completions', '{"model":"m","stream":true,"stream_options":{"include_usage":true}}'), undefined);
  });

  it('leaves other paths, and bodies that are not JSON objects, as they are', () => {
    assert.equal(ask('/v1/embeddings', { input: 'x' }), undefined);
    assert.equal(ask('/v1/responses', '{"stream":true}'), undefined, 'a Responses stream reports its usage anyway');
    assert.equal(ask('/v1/audio/transcriptions', '{"stream":true}'), undefined);
    assert.equal(ask('/v1/chat/completions', '[1,2]'), undefined);
    assert.equal(ask('/v1/chat/completions', '{"stream_options": nope'), undefined);
  });
});

describe('hiding the usage the app did not ask for', () => {
  const hide = openai.withoutAskedUsage!;
  it('leaves out the usage-only chunk and the usage: null of the others, byte for byte', () => {
    const [content, usage] = events(
      'data: {"id":"c","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}],"usage":null}\n\n' +
        'data: {"id":"c","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}\n\n',
    );
    assert.equal(hide(content!)!.raw, 'data: {"id":"c","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}\n\n');
    assert.equal(hide(usage!), undefined);
    const [spaced] = events('data: {"id": "c", "usage": null, "choices": [{"index": 0, "delta": {"content": "x"}}]}\n\n');
    assert.equal(hide(spaced!)!.raw, 'data: {"id": "c", "choices": [{"index": 0, "delta": {"content": "x"}}]}\n\n');
  });

  it('never touches text that mentions the usage', () => {
    const [mention] = events('data: {"id":"c","choices":[{"index":0,"delta":{"content":"set ,\\"usage\\":null, and \\"usage\\": null,"},"finish_reason":null}]}\n\n');
    assert.equal(hide(mention!), mention);
    const [finish] = events('data: {"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1}}\n\n');
    assert.equal(hide(finish!), finish, 'a chunk with choices and usage (a server that always reports it) is the app\'s as it came');
  });
});

describe('the Responses API\'s paths and numbers', () => {
  it('is the dialect of /v1/responses and Azure\'s /openai/responses only, not of a deployment or a query that says responses', async () => {
    assert.equal(dialectFor('openai', '/v1/responses').name, 'openai-responses');
    assert.equal(dialectFor('openai', '/v1/responses/resp_1?stream=true', 'GET').name, 'openai-passthrough', 'retrieving a response passes through');
    assert.equal(dialectFor('openai', '/v1/responses/resp_1', 'DELETE').name, 'openai-passthrough', 'deleting one is never answered by a cache or static tier');
    assert.equal(dialectFor('openai', '/v1/responses/input_tokens').name, 'openai-passthrough');
    assert.equal(dialectFor('openai', '/v1/responses/resp_1/input_items').name, 'openai-passthrough', 'a list, not a response');
    assert.equal(dialectFor('openai', '/v1/responses/compact').name, 'openai-passthrough');
    assert.equal(dialectFor('openai', '/openai/responses?api-version=2025-04-01-preview').name, 'openai-responses');
    assert.equal(dialectFor('openai', '/openai/deployments/responses/chat/completions?api-version=2024-10-21').name, 'openai');
    assert.equal(dialectFor('openai', '/v1/chat/completions?note=/v1/responses').name, 'openai');
  });

  it('passes an event nested too deep to write back on as it came, instead of throwing', () => {
    const deep = '{"type":"response.output_text.delta","sequence_number":3,"x":' + '['.repeat(20000) + ']'.repeat(20000) + '}';
    assert.equal(openaiResponses.withSequence!('response.output_text.delta', deep, 9), undefined);
  });
});

