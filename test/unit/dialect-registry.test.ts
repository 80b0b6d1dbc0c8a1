/**
 * The registry of dialects: each request's dialect comes from its upstream's
 * API family and the path, and a path of a known API whose answers are not
 * text passes through (nothing judged, rewritten or composed for it).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { API_FAMILIES, API_FAMILY_NAMES } from '../../api/index.js';
import { dialectFor } from '../../sidecar/proxy/dialects/dialect.js';

describe('the dialect of a request', () => {
  it('is chosen by family and path', () => {
    const cases: [Parameters<typeof dialectFor>[0], string, string][] = [
      ['openai', '/v1/chat/completions', 'openai'],
      ['openai', '/v1/completions?x=1', 'openai'],
      ['openai', '/v1/chat/%63ompletions', 'openai'],
      ['openai', '/v1/chat/completions/', 'openai'],
      ['openai', '/v1/%65mbeddings', 'openai-passthrough'],
      ['openai', '/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21', 'openai'],
      ['openai', '/v1beta/openai/chat/completions', 'openai'],
      ['openai', '/v1/responses', 'openai-responses'],
      ['openai', '/v1/embeddings', 'openai-passthrough'],
      ['openai', '/openai/deployments/completions/embeddings', 'openai-passthrough'],
      ['openai', '/v1/audio/transcriptions', 'openai-passthrough'],
      ['openai', '/v1/audio/speech', 'openai-passthrough'],
      ['openai', '/v1/chat/completions/chatcmpl-1/messages', 'openai-passthrough'],
      ['openai', '/v1/models', 'openai-passthrough'],
      ['anthropic', '/v1/messages', 'anthropic'],
      ['anthropic', '/v1/messages/count_tokens', 'anthropic-passthrough'],
      ['anthropic', '/v1/messages/batches', 'anthropic-passthrough'],
      ['ollama', '/api/chat', 'ollama-chat'],
      ['ollama', '/api/generate', 'ollama-generate'],
      ['ollama', '/api/pull', 'ollama-chat-passthrough'],
      ['ollama', '/api/embed', 'ollama-chat-passthrough'],
      ['ollama', '/v1/chat/completions', 'openai'],
      ['generic', '/anything', 'generic'],
    ];
    for (const [family, path, name] of cases) assert.equal(dialectFor(family, path).name, name, `${family} ${path}`);
  });

  it('is a text dialect for a POST only: any other method passes through', () => {
    for (const method of ['GET', 'DELETE', 'PUT', 'PATCH', 'HEAD', 'OPTIONS']) {
      assert.equal(dialectFor('openai', '/v1/chat/completions', method).name, 'openai-passthrough', method);
      assert.equal(dialectFor('anthropic', '/v1/messages', method).name, 'anthropic-passthrough', method);
      assert.equal(dialectFor('ollama', '/api/chat', method).name, 'ollama-chat-passthrough', method);
    }
    assert.equal(dialectFor('openai', '/v1/chat/completions', 'POST').name, 'openai');
  });

  it('composes no answer, judges nothing and rewrites nothing at a pass-through path', () => {
    const embeddings = dialectFor('openai', '/v1/embeddings');
    assert.equal(embeddings.composeAnswer, undefined);
    assert.equal(embeddings.askUsage, undefined);
    assert.equal(embeddings.answerText({ choices: [{ message: { content: '' } }] }), undefined);
    const json: Record<string, any> = { model: 'text-embedding-3-small', input: ['a'] };
    embeddings.limitOutput(json, 256, 0);
    assert.deepEqual(json, { model: 'text-embedding-3-small', input: ['a'] }, 'degraded mode adds no max_tokens to an embeddings body');
    assert.match(embeddings.errorBody('circuit_open', 'x'), /"error":\{"message":"x"/, "errors in the family's shape");
    assert.match(dialectFor('anthropic', '/v1/messages/count_tokens').errorBody('circuit_open', 'x'), /"type":"error"/);
  });

  it('has a dialect for every family the contract names', () => {
    for (const family of API_FAMILY_NAMES) {
      assert.ok(dialectFor(family, '/v1/chat/completions'), family);
      assert.ok(['prefill', 'off'].includes(API_FAMILIES[family].continuation));
    }
  });
});
