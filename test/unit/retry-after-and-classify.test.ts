import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { classifyStatus as classify, classifyTransportError } from '../../sidecar/proxy/dialects/classify.js';
import { anthropic } from '../../sidecar/proxy/dialects/anthropic.js';
import type { Dialect } from '../../sidecar/proxy/dialects/dialect.js';
import { generic } from '../../sidecar/proxy/dialects/generic.js';
import { ollamaChat } from '../../sidecar/proxy/dialects/ollama.js';
import { openai } from '../../sidecar/proxy/dialects/openai.js';
import { retryAfterMs } from '../../sidecar/proxy/upstream/retry-after.js';

const NOW = Date.parse('2026-11-23T12:00:00Z');

describe('retry-after', () => {
  it('reads seconds, HTTP dates and milliseconds', () => {
    assert.equal(retryAfterMs({ 'retry-after': '2' }, NOW), 2000);
    assert.equal(retryAfterMs({ 'retry-after': '0.5' }, NOW), 500);
    assert.equal(retryAfterMs({ 'retry-after': 'Mon, 23 Nov 2026 12:00:07 GMT' }, NOW), 7000);
    assert.equal(retryAfterMs({ 'retry-after-ms': '150' }, NOW), 150);
    assert.equal(retryAfterMs({ 'retry-after-ms': '150', 'retry-after': '9' }, NOW), 150, 'the precise header wins');
    assert.equal(retryAfterMs({ 'retry-after': 'Mon, 23 Nov 2026 11:59:00 GMT' }, NOW), 0, 'a past date means now');
    assert.equal(retryAfterMs({ 'retry-after': 'soon' }, NOW), undefined);
    assert.equal(retryAfterMs({}, NOW), undefined);
  });

  it('reads reset headers only for the limit that is spent', () => {
    assert.equal(retryAfterMs({ 'x-ratelimit-reset-requests': '1s', 'x-ratelimit-remaining-requests': '0', 'x-ratelimit-reset-tokens': '6m0s', 'x-ratelimit-remaining-tokens': '900' }, NOW), 1000);
    assert.equal(retryAfterMs({ 'x-ratelimit-reset-tokens': '1m30.5s', 'x-ratelimit-remaining-tokens': '0' }, NOW), 90_500);
    assert.equal(retryAfterMs({ 'x-ratelimit-reset-requests': '20ms', 'x-ratelimit-remaining-requests': '5' }, NOW), undefined);
    assert.equal(retryAfterMs({ 'anthropic-ratelimit-tokens-reset': '2026-11-23T12:00:03Z', 'anthropic-ratelimit-tokens-remaining': '0' }, NOW), 3000);
  });
});

/** Classified as an OpenAI-compatible server's answer, unless a dialect is named. */
const classifyStatus = (status: number, body: string, dialect: Dialect = openai) => classify(status, body, dialect.recognisers);

describe('classification', () => {
  it('sorts statuses into the contract classes', () => {
    assert.equal(classifyStatus(200, ''), undefined);
    assert.equal(classifyStatus(429, ''), 'rate-limited');
    assert.equal(classifyStatus(503, ''), 'overloaded');
    assert.equal(classifyStatus(529, ''), 'overloaded');
    assert.equal(classifyStatus(500, '{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'), 'overloaded');
    assert.equal(classifyStatus(500, ''), 'server-error');
    assert.equal(classifyStatus(502, ''), 'server-error');
    assert.equal(classifyStatus(400, '{"error":{"message":"bad"}}'), 'client-error');
    assert.equal(classifyStatus(404, ''), 'client-error');
  });

  it('recognises context-length errors from real API bodies', () => {
    const openaiBody = '{"error":{"message":"This model\'s maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}';
    const anthropicBody = '{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 210000 tokens > 200000 maximum"}}';
    const vllmBody = '{"object":"error","message":"This model\'s maximum context length is 4096 tokens. However, you requested 5000 tokens (4000 in the messages, 1000 in the completion). Please reduce the length of the messages or completion.","type":"BadRequestError","param":null,"code":400}';
    const llamaCppBody = '{"error":{"code":400,"message":"the request exceeds the available context size, try increasing it","type":"exceed_context_size_error"}}';
    const ollamaBody = '{"error":"the input length exceeds the context length"}';
    const cases: [Dialect, string][] = [
      [openai, openaiBody],
      [openai, vllmBody],
      [openai, llamaCppBody],
      [anthropic, anthropicBody],
      [ollamaChat, ollamaBody],
    ];
    for (const [dialect, body] of cases) assert.equal(classifyStatus(400, body, dialect), 'context-length', `${dialect.name}: ${body}`);
    // OpenAI-compatible gateways and the generic dialect pass other providers' texts through.
    for (const [, body] of cases) {
      assert.equal(classifyStatus(400, body, openai), 'context-length', body);
      assert.equal(classifyStatus(400, body, generic), 'context-length', body);
    }
    // A dialect knows its own family's texts only.
    assert.equal(classifyStatus(400, openaiBody.replace('maximum context length', 'limit'), anthropic), 'client-error');
  });

  it('recognises content-filter errors', () => {
    assert.equal(classifyStatus(400, '{"error":{"code":"content_filter","message":"The response was filtered"}}'), 'content-filter');
    assert.equal(classifyStatus(400, '{"error":{"code":"content_filter","message":"The response was filtered"}}', generic), 'content-filter');
    // Azure OpenAI
    assert.equal(classifyStatus(400, '{"error":{"message":"The response was filtered due to the prompt triggering Azure OpenAI\'s content management policy.","type":null,"param":"prompt","code":"content_filter","status":400,"innererror":{"code":"ResponsibleAIPolicyViolation"}}}'), 'content-filter');
  });

  it('sorts transport errors into connect-failure and reset', () => {
    assert.equal(classifyTransportError(Object.assign(new Error('x'), { code: 'ECONNREFUSED' })), 'connect-failure');
    assert.equal(classifyTransportError(Object.assign(new Error('x'), { cause: { code: 'ENOTFOUND' } })), 'connect-failure');
    assert.equal(classifyTransportError(Object.assign(new Error('other side closed'), { code: 'UND_ERR_SOCKET' })), 'reset');
  });
});
