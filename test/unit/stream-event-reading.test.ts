/**
 * How each dialect reads a stream's events: whether one fails the stream
 * (eventFailure) and what text it carries (streamText). An event's data is
 * parsed once for both readers (the last one parsed is kept), so the answers
 * must not depend on what was read before: fuzzed over any order of events,
 * including the same data twice and data that is not JSON.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { anthropic } from '../../sidecar/proxy/dialects/anthropic.js';
import type { Dialect } from '../../sidecar/proxy/dialects/dialect.js';
import { ollamaChat } from '../../sidecar/proxy/dialects/ollama.js';
import { openai } from '../../sidecar/proxy/dialects/openai.js';

const dialects: [Dialect, string][] = [
  [openai, 'message'],
  [anthropic, 'content_block_delta'],
  [ollamaChat, 'message'],
];

/** Event data as the three APIs send it, errors, tool calls, and data that is not JSON or not an object. */
const eventData = fc.oneof(
  fc.string().map((content) => JSON.stringify({ choices: [{ index: 0, delta: { content } }] })),
  fc.string().map((text) => JSON.stringify({ type: 'content_block_delta', delta: { type: 'text_delta', text } })),
  fc.string().map((content) => JSON.stringify({ message: { role: 'assistant', content }, done: false })),
  fc.constant(JSON.stringify({ choices: [{ index: 0, delta: { tool_calls: [{ index: 0 }] } }] })),
  fc.string().map((message) => JSON.stringify({ error: { message, type: 'server_error' } })),
  fc.string(),
  fc.json(),
);

const reading = (dialect: Dialect, event: string, data: string) => ({ failure: dialect.eventFailure(event, data), text: dialect.streamText(event, data) });

describe('reading stream events', () => {
  it('gives each event the same answers whatever was read before it (property)', () => {
    fc.assert(
      fc.property(fc.array(eventData, { minLength: 1, maxLength: 12 }), fc.nat(), (events, seed) => {
        for (const [dialect, event] of dialects) {
          // In order (each event read by both readers, as the relay and recovery read it)...
          const inOrder = events.map((data) => reading(dialect, event, data));
          // ...and each again after another event was read in between.
          events.forEach((data, i) => {
            reading(dialect, event, events[(i + 1 + (seed % events.length)) % events.length]!);
            assert.deepEqual(reading(dialect, event, data), inOrder[i]);
          });
        }
      }),
      { numRuns: 300 },
    );
  });

  it("reads an event's failure and text from the data, whether or not the same data was just read", () => {
    const text = JSON.stringify({ choices: [{ index: 0, delta: { content: 'Hello' } }] });
    const error = JSON.stringify({ error: { message: 'The server is overloaded', type: 'server_error' } });
    for (const data of [text, text, error, text]) {
      const { failure, text: carried } = reading(openai, 'message', data);
      if (data === text) {
        assert.equal(failure, undefined);
        assert.equal(carried, 'Hello');
      } else {
        assert.equal(failure?.failure, 'overloaded');
        assert.equal(carried, undefined);
      }
    }
    assert.equal(openai.eventFailure('message', '{"choices": [')?.failure, 'invalid-response');
    assert.equal(openai.streamText('message', '{"choices": ['), undefined);
  });
});
