/** Anthropic's Messages API: typed error bodies, named SSE events ending in message_stop, usage in input/output_tokens and the prompt cache's counts. */
import type { Dialect, EventReading, LocalErrorCode, Recogniser } from './types.js';
import { asObject, clamp, composedId, ContentCollector, count, kindOf, position, errorReading, FIRST_CHOICE, malformed, MALFORMED, OVERLOADED, parseJson, positive, prefillAssistant, setTopLevelModel, statusMessage, topLevelFields, usageOf } from './shared.js';

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

/**
 * The input tokens a usage object reports: input_tokens leaves out the prompt cache's, which Anthropic
 * counts apart (cache_creation_input_tokens written to it, cache_read_input_tokens read from it: "total
 * input tokens is the summation" of the three, as the SDK's Usage says), so they are added here; a cache
 * count that is absent or null is 0 (a server without a prompt cache). Undefined without input_tokens.
 * `cumulative`: a stream's message_delta, whose counts are running totals in which a null one is
 * unchanged (the SDK's stream reader keeps the one before): one that does not give all three leaves
 * the input message_start reported.
 */
function inputOf(usage: Record<string, any>, cumulative = false): number | undefined {
  const uncached = count(usage.input_tokens);
  if (uncached === undefined) return undefined;
  if (cumulative && (usage.cache_creation_input_tokens === null || usage.cache_read_input_tokens === null)) return undefined;
  return uncached + (count(usage.cache_creation_input_tokens) ?? 0) + (count(usage.cache_read_input_tokens) ?? 0);
}

/** The counts a stream event's usage object reports: undefined when it says neither. */
function streamUsage(usage: Record<string, any> | undefined, cumulative: boolean): EventReading['usage'] {
  return usage ? usageOf(inputOf(usage, cumulative), usage.output_tokens) : undefined;
}

const textBlock = (json: Record<string, any>) => (Array.isArray(json.content) ? json.content.find((c: { type?: string }) => c?.type === 'text') : undefined);

const TERMINAL: EventReading = { terminal: true };
const OPENS: EventReading = { opens: true };
const NOTHING: EventReading = {};

/** Channel names of the first content blocks, made once. */
const channelsOf = (i: number) => ({ text: `block${i}.text`, thinking: `block${i}.thinking`, tool: `block${i}.tool`, args: `block${i}.args` });
const BLOCKS = Array.from({ length: 16 }, (_, i) => channelsOf(i));
const blockChannels = (index: unknown) => {
  const i = position(index);
  return BLOCKS[i] ?? channelsOf(i);
};

/**
 * Content of a kind recovery cannot vouch for (redacted thinking and server tools, whose data differs
 * from one generation to the next; citations; kinds this sidecar does not know): it is the model's
 * output all the same, so it counts as the stream's first content.
 */
const opaque = (channel: string, text: string): EventReading => ({ unverifiable: true, content: [{ channel, text: text || 'content' }] });

/**
 * A content block's start or delta: its content (text, thinking, a tool call's name, its argument
 * JSON); a thinking block's signature, a mark of its structure (a regeneration repeats the thinking
 * exactly, so the signature of either stream signs the same text); or, for other kinds, what it is.
 */
function blockContent(pieces: ContentCollector, event: string, json: Record<string, any>): EventReading | undefined {
  const names = blockChannels(json.index);
  if (event === 'content_block_start') {
    const start = asObject(json.content_block);
    if (start?.type === 'text') return void pieces.field(start, 'text', names.text, () => (start.text = ''));
    if (start?.type === 'thinking') return void pieces.field(start, 'thinking', names.thinking, () => (start.thinking = ''));
    // A tool call's input comes in its deltas; one that starts with input already cannot be verified.
    if (start?.type === 'tool_use' && !(asObject(start.input) && Object.keys(start.input).length > 0)) return void pieces.field(start, 'name', names.tool);
    return opaque(`${names.text}.${kindOf(start?.type)}`, kindOf(start?.type));
  }
  const delta = asObject(json.delta);
  if (delta?.type === 'text_delta') return void pieces.field(delta, 'text', names.text, () => (delta.text = ''));
  if (delta?.type === 'thinking_delta') return void pieces.field(delta, 'thinking', names.thinking, () => (delta.thinking = ''));
  if (delta?.type === 'input_json_delta') return void pieces.field(delta, 'partial_json', names.args, () => (delta.partial_json = ''));
  if (delta?.type === 'signature_delta') return { structure: `signature:${position(json.index)}` };
  return opaque(`${names.text}.${kindOf(delta?.type)}`, kindOf(delta?.type));
}

/** What an event says, with its parse and its content (collected for a rewrite when `forRewrite`). */
function readEventOf(event: string, data: string, forRewrite: boolean): { json: Record<string, any>; reading: EventReading; pieces: ContentCollector } | EventReading {
  const parsed = parseJson(data);
  if (parsed === MALFORMED) return malformed(data);
  const json = asObject(parsed);
  if (!json) return NOTHING;
  const type = typeof json.type === 'string' ? json.type : event;
  if (event === 'error' || type === 'error') return errorReading(json.error ?? json, ANTHROPIC_RECOGNISERS);
  switch (type) {
    case 'message_start': {
      const usage = streamUsage(asObject(asObject(json.message)?.usage), false);
      return usage ? { opens: true, usage } : OPENS;
    }
    case 'message_delta': {
      const usage = streamUsage(asObject(json.usage), true);
      const reading: EventReading = {};
      if (usage) reading.usage = usage;
      const stop: unknown = asObject(json.delta)?.stop_reason;
      if (typeof stop === 'string' && stop !== '') reading.finished = FIRST_CHOICE;
      return reading;
    }
    case 'message_stop':
      return TERMINAL;
    case 'content_block_start':
    case 'content_block_delta': {
      const pieces = new ContentCollector(forRewrite);
      const other = blockContent(pieces, type, json);
      if (other) return other;
      // A text block that starts empty opens the block without content.
      if (pieces.content.length === 0) return type === 'content_block_start' ? { opens: true, structure: `start:${position(json.index)}` } : NOTHING;
      return { json, reading: pieces.into({}), pieces };
    }
    case 'content_block_stop':
      return { structure: `stop:${position(json.index)}` };
    default:
      return NOTHING; // ping
  }
}

export const anthropic: Dialect = {
  name: 'anthropic',
  readRequest: (json) => ({ ...topLevelFields(json), maxTokens: positive(json.max_tokens) }),
  outputCapFields: ['max_tokens'],
  setModel: setTopLevelModel,
  streamsByDefault: false,
  replaysSafely: true,
  errorBody: (code, text) => JSON.stringify({ type: 'error', error: { type: ERROR_TYPE[code], message: text, code } }),
  upstreamErrorBody(status, text = statusMessage(status)) {
    const type = status === 429 ? 'rate_limit_error' : status === 529 ? 'overloaded_error' : status >= 500 ? 'api_error' : 'invalid_request_error';
    return JSON.stringify({ type: 'error', error: { type, message: text } });
  },
  streamError: (code, text) => ({ event: 'error', data: anthropic.errorBody(code, text) }),
  readEvent(event, data) {
    const read = readEventOf(event, data, false);
    return 'reading' in read ? read.reading : read;
  },
  terminator: 'event: message_stop\ndata: {"type":"message_stop"}\n\n',
  endsWithTerminator: true,
  withContent(event, data, keep) {
    const read = readEventOf(event, data, true);
    if ('pieces' in read) read.pieces.keep(keep);
    return `event: ${event}\ndata: ${'json' in read ? JSON.stringify(read.json) : data}\n\n`;
  },
  continueWith(json, text) {
    // "final assistant content cannot end with trailing whitespace": the whitespace is left to the continuation.
    const carried = text.trimEnd();
    return carried !== '' && prefillAssistant(json, carried) ? carried.length : undefined;
  },
  answerUsage(json) {
    const usage = asObject(json.usage);
    if (!usage) return undefined;
    const input = inputOf(usage) ?? 0;
    const output = count(usage.output_tokens) ?? 0;
    return input || output ? { input, output } : undefined;
  },
  recognisers: ANTHROPIC_RECOGNISERS,
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
