/**
 * OpenAI's Responses API (`POST /v1/responses`), which OpenAI recommends for
 * new apps and the Agents SDK and the Vercel AI SDK's default provider call.
 * Its stream is named SSE events whose JSON carries `type` and an increasing
 * `sequence_number`, with no `[DONE]`: it ends with `response.completed`,
 * `response.incomplete` (a normal end, e.g. at max_output_tokens),
 * `response.failed` or an `error` event. Content is the output text,
 * reasoning (text and summaries), refusals, and function calls (the name in
 * `response.output_item.added`, the arguments in deltas); usage is on the
 * terminal response object. Errors and requests otherwise are OpenAI's.
 */
import type { Dialect, EventReading } from './types.js';
import { asksForJson, openai, OPENAI_RECOGNISERS } from './openai.js';
import { asObject, clamp, composedId, ContentCollector, kindOf, position, errorReading, FIRST_CHOICE, malformed, MALFORMED, parseJson, positive, topLevelFields, usageOf } from './shared.js';

const OPENS: EventReading = { opens: true };
const NOTHING: EventReading = {};
/** Annotations (citations) added to text: recovery cannot vouch for them. */
const UNVERIFIABLE: EventReading = { unverifiable: true };

/** Delta events: where their content goes (per output item, and content or summary part). */
const DELTAS: Record<string, (json: Record<string, any>) => string> = {
  'response.output_text.delta': (j) => `item${position(j.output_index)}.text${position(j.content_index)}`,
  'response.refusal.delta': (j) => `item${position(j.output_index)}.refusal${position(j.content_index)}`,
  'response.reasoning_text.delta': (j) => `item${position(j.output_index)}.reasoning${position(j.content_index)}`,
  'response.reasoning_summary_text.delta': (j) => `item${position(j.output_index)}.summary${position(j.summary_index)}`,
  'response.function_call_arguments.delta': (j) => `item${position(j.output_index)}.args`,
  'response.custom_tool_call_input.delta': (j) => `item${position(j.output_index)}.input`,
};

/** Output items whose content is text, reasoning or a function call; others (web search, code interpreter, images, MCP) are opaque. */
const VERIFIABLE_ITEMS = new Set(['message', 'reasoning', 'function_call', 'custom_tool_call']);

const number = (n: unknown) => (typeof n === 'number' ? n : undefined);

/** What an event says, with its parse and its content (collected for a rewrite when `forRewrite`). */
function readResponseEvent(event: string, data: string, forRewrite: boolean): { json: Record<string, any>; reading: EventReading; pieces: ContentCollector } | EventReading {
  const parsed = parseJson(data);
  if (parsed === MALFORMED) return malformed(data);
  const json = asObject(parsed);
  if (!json) return event === 'error' ? errorReading(data, OPENAI_RECOGNISERS) : NOTHING;
  const type = typeof json.type === 'string' ? json.type : event;
  const sequence = number(json.sequence_number);
  const withSequence = (reading: EventReading): EventReading => (sequence === undefined ? reading : { ...reading, sequence });
  if (type === 'error' || event === 'error') return errorReading({ code: json.code, message: json.message }, OPENAI_RECOGNISERS);
  // A Chat-style error chunk (some gateways send one in any stream): the openai SDK throws on it, so it is a failure here too.
  if (asObject(json.error) && json.type === undefined) return errorReading(json.error, OPENAI_RECOGNISERS);
  if (type === 'response.failed') return errorReading(asObject(json.response)?.error ?? json, OPENAI_RECOGNISERS);
  if (type === 'response.completed' || type === 'response.incomplete') {
    const usage = asObject(asObject(json.response)?.usage);
    return withSequence({ terminal: true, finished: FIRST_CHOICE, usage: usage ? usageOf(usage.input_tokens, usage.output_tokens) : undefined });
  }
  if (type === 'response.created' || type === 'response.in_progress' || type === 'response.queued') return withSequence(OPENS);
  const pieces = new ContentCollector(forRewrite);
  const delta = DELTAS[type];
  if (delta) {
    pieces.field(json, 'delta', delta(json), () => (json.delta = ''));
    return { json, reading: withSequence(pieces.into({})), pieces };
  }
  if (type === 'response.output_item.added') {
    const item = asObject(json.item);
    if (item && !VERIFIABLE_ITEMS.has(String(item.type))) return withSequence({ unverifiable: true, content: [{ channel: `item${position(json.output_index)}.${kindOf(item.type)}`, text: kindOf(item.type) }] });
    // A function call's name comes with its item; other items open a part of the answer.
    if (item?.type === 'function_call' || item?.type === 'custom_tool_call') pieces.field(item, 'name', `item${position(json.output_index)}.tool`);
    if (pieces.content.length > 0) return { json, reading: withSequence(pieces.into({})), pieces };
    return withSequence({ structure: `added:${position(json.output_index)}` });
  }
  if (type === 'response.output_text.annotation.added') return withSequence(UNVERIFIABLE);
  // The rest marks the answer's structure: parts added, and items, parts and texts done (their text repeats the deltas').
  if (type.startsWith('response.') && (type.endsWith('.done') || type.endsWith('part.added'))) return withSequence({ structure: `${kindOf(type)}:${position(json.output_index)}:${position(json.content_index ?? json.summary_index)}` });
  if (type.startsWith('response.') && type.endsWith('.delta')) return withSequence({ unverifiable: true, content: [{ channel: `item${position(json.output_index)}.${kindOf(type)}`, text: 'delta' }] });
  return withSequence(NOTHING);
}

/** The output text of a response object (what the SDK's `output_text` reads). */
function outputText(json: Record<string, any>): string | undefined {
  if (json.object !== 'response' && !Array.isArray(json.output)) return undefined;
  let text: string | undefined;
  for (const item of Array.isArray(json.output) ? json.output : []) {
    if (item?.type !== 'message' || !Array.isArray(item.content)) continue;
    for (const part of item.content) if (part?.type === 'output_text' && typeof part.text === 'string') text = (text ?? '') + part.text;
  }
  return text ?? (Array.isArray(json.output) ? '' : undefined);
}

/** A response object the sidecar composes (cache and static tiers). */
function responseObject(id: string, model: string, status: 'in_progress' | 'completed', output: object[], usage?: { input: number; output: number }): Record<string, unknown> {
  return {
    id,
    object: 'response',
    created_at: Math.floor(Date.now() / 1000),
    status,
    error: null,
    incomplete_details: null,
    model,
    output,
    parallel_tool_calls: true,
    tool_choice: 'auto',
    tools: [],
    usage: usage ? { input_tokens: usage.input, input_tokens_details: { cached_tokens: 0 }, output_tokens: usage.output, output_tokens_details: { reasoning_tokens: 0 }, total_tokens: usage.input + usage.output } : null,
  };
}

const message = (id: string, text: string, status: 'in_progress' | 'completed') => ({
  id,
  type: 'message',
  status,
  role: 'assistant',
  content: status === 'completed' ? [{ type: 'output_text', text, annotations: [] }] : [],
});

export const openaiResponses: Dialect = {
  ...openai,
  name: 'openai-responses',
  readRequest: (json) => ({ ...topLevelFields(json), maxTokens: positive(json.max_output_tokens), jsonMode: asksForJson(asObject(json.text)?.format) }),
  outputCapFields: ['max_output_tokens'],
  askUsage: undefined, // its terminal event always carries usage
  unaskUsage: undefined,
  withoutAskedUsage: undefined,
  streamError: (code, text, sequence) => ({ event: 'error', data: JSON.stringify({ type: 'error', code, message: text, param: null, sequence_number: (sequence ?? 0) + 1 }) }),
  readEvent(event, data) {
    const read = readResponseEvent(event, data, false);
    return 'reading' in read ? read.reading : read;
  },
  terminator: undefined, // the terminal event carries the response: a stream without one was cut
  endsWithTerminator: true,
  withContent(event, data, keep) {
    const read = readResponseEvent(event, data, true);
    if ('pieces' in read) read.pieces.keep(keep);
    return `event: ${event}\ndata: ${'json' in read ? JSON.stringify(read.json) : data}\n\n`;
  },
  withSequence(event, data, sequence) {
    const json = asObject(parseJson(data));
    if (!json || typeof json.sequence_number !== 'number') return undefined;
    json.sequence_number = sequence;
    try {
      return `event: ${event}\ndata: ${JSON.stringify(json)}\n\n`;
    } catch {
      return undefined; // nested too deep to write back: passed on as it came
    }
  },
  continueWith: () => undefined, // the Responses API takes no prefill: regenerate and verify
  // Only a completed response is judged for empty text: an incomplete one (a reasoning model cut at max_output_tokens, a content filter) is what it is.
  answerText: (json) => (json.status === undefined || json.status === 'completed' ? outputText(json) : undefined),
  // Any output item but a message or reasoning is an action the model asks for (function, custom and computer calls, MCP, images…).
  hasToolCalls: (json) => Array.isArray(json.output) && json.output.some((item: { type?: string }) => item?.type !== 'message' && item?.type !== 'reasoning'),
  refused: (json) => Array.isArray(json.output) && json.output.some((item: { content?: { type?: string }[] }) => item?.content?.some?.((part) => part?.type === 'refusal')),
  limitOutput(json, maxTokens, temperature) {
    json.max_output_tokens = clamp(json.max_output_tokens, maxTokens);
    json.temperature = temperature;
  },
  answerUsage: (json) => {
    const usage = asObject(json.usage);
    const read = usage && usageOf(usage.input_tokens, usage.output_tokens);
    return read ? { input: read.input ?? 0, output: read.output ?? 0 } : undefined;
  },
  composeAnswer(model, text, usage) {
    return JSON.stringify({ ...responseObject(composedId('resp_'), model, 'completed', [message(composedId('msg_'), text, 'completed')], usage), output_text: text });
  },
  composeStream(model, pieces, usage) {
    const id = composedId('resp_');
    const itemId = composedId('msg_');
    const text = pieces.join('');
    let sequence = 0;
    const event = (type: string, fields: object) => `event: ${type}\ndata: ${JSON.stringify({ type, ...fields, sequence_number: sequence++ })}\n\n`;
    const part = (t: string) => ({ type: 'output_text', text: t, annotations: [] });
    const at = { item_id: itemId, output_index: 0, content_index: 0 };
    return {
      start: [
        event('response.created', { response: responseObject(id, model, 'in_progress', []) }),
        event('response.in_progress', { response: responseObject(id, model, 'in_progress', []) }),
        event('response.output_item.added', { output_index: 0, item: message(itemId, '', 'in_progress') }),
        event('response.content_part.added', { ...at, part: part('') }),
      ],
      content: pieces.map((delta) => event('response.output_text.delta', { ...at, delta, logprobs: [] })),
      end: [
        event('response.output_text.done', { ...at, text, logprobs: [] }),
        event('response.content_part.done', { ...at, part: part(text) }),
        event('response.output_item.done', { output_index: 0, item: message(itemId, text, 'completed') }),
        event('response.completed', { response: responseObject(id, model, 'completed', [message(itemId, text, 'completed')], usage) }),
      ],
    };
  },
};
