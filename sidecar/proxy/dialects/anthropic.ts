/** Anthropic's Messages API: typed error bodies, named SSE events ending in message_stop, usage in input/output_tokens. */
import type { Dialect, LocalErrorCode, Recogniser } from './types.js';
import { clamp, composedId, jsonEventFailure, parseEventObject, ndjsonError, OVERLOADED, prefillAssistant, statusMessage, usageReaders } from './shared.js';

const ANTHROPIC_RECOGNISERS: Recogniser[] = [
  { class: 'context-length', pattern: /prompt is too long/i, source: 'Anthropic' },
  { class: 'context-length', pattern: /context window|context length/i, source: 'Anthropic (other wordings)' },
  OVERLOADED,
];

const ERROR_TYPE: Record<LocalErrorCode, string> = {
  circuit_open: 'overloaded_error',
  overloaded: 'overloaded_error',
  upstream_timeout: 'api_error',
  upstream_unavailable: 'api_error',
  retry_budget_exhausted: 'overloaded_error',
  request_too_large: 'request_too_large',
  unknown_upstream: 'not_found_error',
  invalid_request: 'invalid_request_error',
  rate_limited: 'rate_limit_error',
  stream_interrupted: 'api_error',
  guardrail_blocked: 'invalid_request_error',
  budget_exhausted: 'rate_limit_error',
};

const textBlock = (json: Record<string, any>) => (Array.isArray(json.content) ? json.content.find((c: { type?: string }) => c?.type === 'text') : undefined);

export const anthropic: Dialect = {
  name: 'anthropic',
  errorBody: (code, text) => JSON.stringify({ type: 'error', error: { type: ERROR_TYPE[code], message: text, code } }),
  upstreamErrorBody(status, text = statusMessage(status)) {
    const type = status === 429 ? 'rate_limit_error' : status === 529 ? 'overloaded_error' : status >= 500 ? 'api_error' : 'invalid_request_error';
    return JSON.stringify({ type: 'error', error: { type, message: text } });
  },
  streamError(framing, code, text) {
    return framing === 'ndjson' ? ndjsonError(code, text) : `event: error\ndata: ${anthropic.errorBody(code, text)}\n\n`;
  },
  terminated: (tail) => tail.includes('message_stop'),
  streamText(event, data) {
    const json = parseEventObject(data);
    if (event === 'content_block_start' && json?.content_block?.type !== 'text') return null; // tool use, thinking
    if (event !== 'content_block_delta') return undefined;
    return json?.delta?.type === 'text_delta' && typeof json.delta.text === 'string' ? json.delta.text : null;
  },
  opensStream: (event) => event === 'message_start' || event === 'content_block_start',
  withStreamText(event, data, text) {
    const json = JSON.parse(data) as Record<string, any>;
    return `event: ${event}\ndata: ${JSON.stringify({ ...json, delta: { ...json.delta, text } })}\n\n`;
  },
  continueWith(json, text) {
    // "final assistant content cannot end with trailing whitespace": the whitespace is left to the continuation.
    const carried = text.trimEnd();
    return carried !== '' && prefillAssistant(json, carried) ? carried.length : undefined;
  },
  eventFailure: jsonEventFailure((event, json) => (event === 'error' || json.type === 'error' ? (json.error ?? json) : undefined), ANTHROPIC_RECOGNISERS),
  missingTerminator: (tail) => (/"stop_reason"\s*:\s*"[^"]+"/.test(tail) ? 'event: message_stop\ndata: {"type":"message_stop"}\n\n' : undefined),
  ...usageReaders(['input_tokens'], ['output_tokens']),
  recognisers: ANTHROPIC_RECOGNISERS,
  streamsByDefault: false,
  answerText: (json) => textBlock(json)?.text,
  hasToolCalls: (json) => Array.isArray(json.content) && json.content.some((c: { type?: string }) => c?.type === 'tool_use'),
  refused: (json) => json.stop_reason === 'refusal',
  limitOutput(json, maxTokens, temperature) {
    json.max_tokens = clamp(json.max_tokens, maxTokens);
    json.temperature = temperature;
  },
  composeAnswer(model, text, usage) {
    return JSON.stringify({
      id: composedId('msg_'),
      type: 'message',
      role: 'assistant',
      model,
      content: [{ type: 'text', text }],
      stop_reason: 'end_turn',
      stop_sequence: null,
      usage: { input_tokens: usage.input, output_tokens: usage.output },
    });
  },
  composeStream(model, pieces, usage) {
    const event = (type: string, data: object) => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
    const message = { id: composedId('msg_'), type: 'message', role: 'assistant', model, content: [], stop_reason: null, usage: { input_tokens: usage.input, output_tokens: 1 } };
    return {
      start: [event('message_start', { message }), event('content_block_start', { index: 0, content_block: { type: 'text', text: '' } })],
      content: pieces.map((p) => event('content_block_delta', { index: 0, delta: { type: 'text_delta', text: p } })),
      end: [
        event('content_block_stop', { index: 0 }),
        event('message_delta', { delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: usage.output } }),
        event('message_stop', {}),
      ],
    };
  },
  streamContentType: 'text/event-stream',
};
