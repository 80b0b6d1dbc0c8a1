/**
 * Prompt-cache tokens in the usage the dialects read: Anthropic counts the
 * cache's writes and reads apart from input_tokens, so its input is the sum of
 * the three, in a plain answer's usage, in message_start, and in a
 * message_delta that repeats every count (cumulative, as the SDK's
 * MessageDeltaUsage says); OpenAI's prompt_tokens already includes its cached
 * tokens (prompt_tokens_details is a breakdown), so nothing is added there.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type Anthropic from '@anthropic-ai/sdk';
import type OpenAI from 'openai';
import { anthropic } from '../../sidecar/proxy/dialects/anthropic.js';
import { openai } from '../../sidecar/proxy/dialects/openai.js';
import { openaiResponses } from '../../sidecar/proxy/dialects/openai-responses.js';

/** A Usage as the Anthropic SDK types it. */
const usage = (input: number, written: number | null, read: number | null, output: number): Anthropic.Usage => ({
  input_tokens: input,
  cache_creation_input_tokens: written,
  cache_read_input_tokens: read,
  output_tokens: output,
  cache_creation: null,
  inference_geo: null,
  output_tokens_details: null,
  server_tool_use: null,
  service_tier: 'standard',
  speed: null,
});

const message = (u: Anthropic.Usage) => ({ id: 'msg_1', type: 'message', role: 'assistant', model: 'claude-sonnet-4-5', content: [{ type: 'text', text: 'hi' }], stop_reason: 'end_turn', stop_sequence: null, usage: u });

describe('Anthropic prompt-cache tokens', () => {
  it('counts a plain answer\'s cache writes and reads as input', () => {
    assert.deepEqual(anthropic.answerUsage(message(usage(25, 200_000, 0, 400))), { input: 200_025, output: 400 }, 'written to the cache');
    assert.deepEqual(anthropic.answerUsage(message(usage(25, 0, 250_000, 400))), { input: 250_025, output: 400 }, 'read from it');
    assert.deepEqual(anthropic.answerUsage(message(usage(25, null, null, 400))), { input: 25, output: 400 }, 'null: no cache');
    assert.deepEqual(anthropic.answerUsage({ usage: { input_tokens: 25, output_tokens: 400 } }), { input: 25, output: 400 }, 'a server without a cache');
  });

  it('counts a stream\'s cache tokens from message_start, and from a message_delta only when it gives every count', () => {
    const start: Anthropic.RawMessageStartEvent = { type: 'message_start', message: message(usage(25, 0, 250_000, 1)) as unknown as Anthropic.Message };
    assert.deepEqual(anthropic.readEvent('message_start', JSON.stringify(start)).usage, { input: 250_025, output: 1 });
    const delta = (u: Partial<Anthropic.MessageDeltaUsage>) => anthropic.readEvent('message_delta', JSON.stringify({ type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: u })).usage;
    assert.deepEqual(delta({ output_tokens: 400 }), { output: 400 }, 'only the output: message_start\'s input stands');
    assert.deepEqual(delta({ input_tokens: 25, cache_creation_input_tokens: 0, cache_read_input_tokens: 250_000, output_tokens: 400 }), { input: 250_025, output: 400 }, 'every count, cumulative');
    assert.deepEqual(delta({ input_tokens: 30, cache_creation_input_tokens: null, cache_read_input_tokens: null, output_tokens: 400 }), { output: 400 }, 'a null count is unchanged: message_start\'s input stands');
  });
});

describe('OpenAI cached tokens', () => {
  it('are part of prompt_tokens (Chat Completions) and input_tokens (Responses), so are not added again', () => {
    const completion: Pick<OpenAI.ChatCompletion, 'usage'> = { usage: { prompt_tokens: 2000, completion_tokens: 100, total_tokens: 2100, prompt_tokens_details: { cached_tokens: 1920 } } };
    assert.deepEqual(openai.answerUsage(completion), { input: 2000, output: 100 });
    const chunk = { id: 'c', object: 'chat.completion.chunk', created: 1, model: 'm', choices: [], usage: completion.usage };
    assert.deepEqual(openai.readEvent('message', JSON.stringify(chunk)).usage, { input: 2000, output: 100 });
    const response = { usage: { input_tokens: 2000, input_tokens_details: { cached_tokens: 1920 }, output_tokens: 100, output_tokens_details: { reasoning_tokens: 0 }, total_tokens: 2100 } };
    assert.deepEqual(openaiResponses.answerUsage(response), { input: 2000, output: 100 });
  });
});
