/**
 * OpenAI's API and everything that speaks it: vLLM, llama.cpp's server,
 * Ollama's /v1, Azure OpenAI, and gateways (LiteLLM and the like) that pass
 * other providers' error messages through, which is why its recognisers also
 * know Anthropic's and Ollama's texts.
 */
import type { Dialect, EventReading, LocalErrorCode, Recogniser } from './types.js';
import { answerUsageReader, asObject, channel, clamp, composedId, ContentCollector, errorReading, FIRST_CHOICE, malformed, MALFORMED, OVERLOADED, parseJson, positive, prefillAssistant, setTopLevelModel, statusMessage, topLevelFields, usageOf } from './shared.js';

const ERROR_TYPE: Record<LocalErrorCode, string> = {
  circuit_open: 'server_error',
  overloaded: 'server_error',
  upstream_timeout: 'server_error',
  upstream_unavailable: 'server_error',
  retry_budget_exhausted: 'server_error',
  request_too_large: 'invalid_request_error',
  unknown_upstream: 'invalid_request_error',
  invalid_request: 'invalid_request_error',
  rate_limited: 'requests',
  stream_interrupted: 'server_error',
  guardrail_blocked: 'invalid_request_error',
  budget_exhausted: 'insufficient_quota',
};

export const OPENAI_RECOGNISERS: readonly Recogniser[] = [
  { class: 'context-length', pattern: /context_length_exceeded/, source: 'OpenAI code' },
  { class: 'context-length', pattern: /maximum context length/i, source: 'vLLM / OpenAI message' },
  { class: 'context-length', pattern: /exceeds? the available context size|exceed_context_size_error/i, source: 'llama.cpp server' },
  { class: 'context-length', pattern: /prompt is too long/i, source: 'Anthropic, through a gateway' },
  { class: 'context-length', pattern: /context length|context window/i, source: 'Ollama and others' },
  { class: 'content-filter', pattern: /content_filter|content_policy_violation|ResponsibleAIPolicyViolation/, source: 'OpenAI / Azure' },
  OVERLOADED,
];

const message = (json: Record<string, any>) => json.choices?.[0]?.message;

const TERMINAL: EventReading = { terminal: true };

/** The most choices the sidecar keeps track of in one stream. */
const MAX_CHOICES = 128;

const JSON_FORMAT = /^json_(?:object|schema)$/;

/** A format object's type asks for JSON (response_format, the Responses API's text.format). */
export const asksForJson = (format: unknown): true | undefined => (JSON_FORMAT.test(String(asObject(format)?.type ?? '')) ? true : undefined);

const ASK_USAGE = Buffer.from('{"stream_options":{"include_usage":true},');
const OPEN_BRACE = Buffer.from('{');
/** The `usage: null` an asked-for stream puts in every chunk (a quote in a JSON string is escaped, so this never matches inside one). */
const NULL_USAGE = /,\s*"usage"\s*:\s*null|"usage"\s*:\s*null\s*,/;
/** OpenAI's own spelling of it, cut out by position (the pattern is for any other spacing). */
const OPENAI_NULL_USAGE = ',"usage":null';

/** `raw` without the `usage: null` of an asked-for stream. */
function withoutNullUsage(raw: string): string {
  const at = raw.indexOf(OPENAI_NULL_USAGE);
  if (at >= 0) return raw.slice(0, at) + raw.slice(at + OPENAI_NULL_USAGE.length);
  return raw.includes('"usage"') ? raw.replace(NULL_USAGE, '') : raw;
}
const NOTHING: EventReading = {};

/**
 * The content of one choice of a chunk, in the order it is read: a legacy completion's text, reasoning
 * (vLLM's and DeepSeek's reasoning_content, OpenRouter's reasoning), text, a refusal, and each tool
 * call's name and arguments (function_call too, the older shape).
 */
function choiceContent(pieces: ContentCollector, choice: Record<string, any>, prefix: string): void {
  pieces.field(choice, 'text', channel(prefix, 'text'));
  const delta = asObject(choice.delta);
  if (!delta) return;
  pieces.field(delta, 'reasoning_content', channel(prefix, 'reasoning'));
  pieces.field(delta, 'reasoning', channel(prefix, 'reasoning'));
  pieces.field(delta, 'content', channel(prefix, 'text'));
  pieces.field(delta, 'refusal', channel(prefix, 'refusal'));
  const calls: unknown = delta.tool_calls;
  if (Array.isArray(calls)) {
    calls.forEach((call: unknown, position) => {
      const c = asObject(call);
      const fn = asObject(c?.function);
      if (!c || !fn) return;
      const tool = `${prefix}tool${typeof c.index === 'number' ? c.index : position}`;
      // A tool call's name comes with its id and type: left out, they go too (the app has the first stream's).
      pieces.field(fn, 'name', `${tool}.name`, () => {
        delete fn.name;
        delete c.id;
        delete c.type;
      });
      pieces.field(fn, 'arguments', `${tool}.args`);
    });
  }
  const legacy = asObject(delta.function_call);
  if (legacy) {
    pieces.field(legacy, 'name', channel(prefix, 'function.name'));
    pieces.field(legacy, 'arguments', channel(prefix, 'function.args'));
  }
}

/** What a chunk says, with its parse and its content (collected for a rewrite when `forRewrite`). */
function readChunk(data: string, forRewrite: boolean): { json: Record<string, any>; reading: EventReading; pieces: ContentCollector } | EventReading {
  if (data === '[DONE]') return TERMINAL;
  const parsed = parseJson(data);
  if (parsed === MALFORMED) return malformed(data);
  const json = asObject(parsed);
  if (!json) return NOTHING;
  if (json.error !== undefined && json.error !== null) return errorReading(json.error, OPENAI_RECOGNISERS);
  const reading: EventReading = {};
  const pieces = new ContentCollector(forRewrite);
  const usage = asObject(json.usage);
  if (usage) reading.usage = usageOf(usage.prompt_tokens, usage.completion_tokens);
  const choices: unknown = json.choices;
  if (Array.isArray(choices) && choices.length > 0) {
    let seen: number[] | undefined;
    let finished: number[] | undefined;
    let role = false;
    for (let position = 0; position < choices.length; position++) {
      const choice = asObject(choices[position]);
      if (!choice) continue;
      const index = typeof choice.index === 'number' ? choice.index : position;
      if (index !== 0) reading.unverifiable = true; // several choices: recovery cannot vouch for them
      (seen ??= []).push(index);
      if (typeof choice.finish_reason === 'string' && choice.finish_reason !== '') (finished ??= []).push(index);
      const before = pieces.content.length;
      choiceContent(pieces, choice, index === 0 ? '' : `choice${index}.`);
      if (pieces.content.length === before && typeof choice.delta?.role === 'string' && !choice.finish_reason) role = true;
      if (asObject(choice.delta)?.audio !== undefined) reading.unverifiable = true;
    }
    reading.choices = seen?.length === 1 && seen[0] === 0 ? FIRST_CHOICE : seen;
    if (finished) reading.finished = finished.length === 1 && finished[0] === 0 ? FIRST_CHOICE : finished;
    if (role && pieces.content.length === 0) reading.opens = true;
  }
  return { json, reading: pieces.into(reading), pieces };
}

export const openai: Dialect = {
  name: 'openai',
  readRequest: (json) => ({
    ...topLevelFields(json),
    maxTokens: positive(json.max_completion_tokens) ?? positive(json.max_tokens),
    choices: Number.isSafeInteger(json.n) && json.n > 1 ? Math.min(json.n, MAX_CHOICES) : undefined,
    usageAsked: asObject(json.stream_options)?.include_usage === true || undefined,
    jsonMode: asksForJson(json.response_format),
  }),
  outputCapFields: ['max_completion_tokens', 'max_tokens'],
  setModel: setTopLevelModel,
  streamsByDefault: false,
  replaysSafely: true,
  errorBody: (code, text) => JSON.stringify({ error: { message: text, type: ERROR_TYPE[code], param: null, code } }),
  upstreamErrorBody(status, text = statusMessage(status)) {
    const type = status === 429 ? 'requests' : status >= 500 ? 'server_error' : 'invalid_request_error';
    return JSON.stringify({ error: { message: text, type, param: null, code: status === 429 ? 'rate_limit_exceeded' : null } });
  },
  streamError: (code, text) => ({ data: openai.errorBody(code, text) }),
  readEvent(_event, data) {
    const read = readChunk(data, false);
    return 'reading' in read ? read.reading : read;
  },
  terminator: 'data: [DONE]\n\n',
  endsWithTerminator: true,
  withContent(_event, data, keep) {
    const read = readChunk(data, true);
    if (!('pieces' in read)) return `data: ${data}\n\n`;
    read.pieces.keep(keep);
    return `data: ${JSON.stringify(read.json)}\n\n`;
  },
  askUsage(body) {
    if (body[0] !== 0x7b /* { */) return undefined;
    // The option goes first, and the body is otherwise the app's byte for byte. A body with stream_options of its own
    // (asking for usage or not, anywhere in a body of any size) is sent as it is: writing it again could change its
    // numbers, and its stream is charged by its text if it reports no usage.
    return body.indexOf('"stream_options"') < 0 ? Buffer.concat([ASK_USAGE, body.subarray(1)]) : undefined;
  },
  unaskUsage: (body) => (body.subarray(0, ASK_USAGE.length).equals(ASK_USAGE) ? Buffer.concat([OPEN_BRACE, body.subarray(ASK_USAGE.length)]) : undefined),
  withoutAskedUsage(event) {
    const { read } = event;
    if (read.usage && !read.choices && !read.content && !read.terminal) return undefined; // the usage chunk the app did not ask for
    const raw = withoutNullUsage(event.raw);
    return raw === event.raw ? event : { ...event, raw };
  },
  continueWith(json, text, style) {
    if (!prefillAssistant(json, text)) return undefined;
    if (style === 'continue-final-message') {
      json.continue_final_message = true;
      json.add_generation_prompt = false;
    }
    return text.length;
  },
  answerUsage: answerUsageReader(['prompt_tokens'], ['completion_tokens']),
  recognisers: OPENAI_RECOGNISERS,
  // An answer the provider's filter stopped is not judged for empty content: it is the provider's answer.
  answerText: (json) => (json.choices?.[0]?.finish_reason === 'content_filter' ? undefined : (message(json)?.content ?? undefined)),
  hasToolCalls: (json) => Boolean(message(json)?.tool_calls?.length),
  refused: (json) => typeof message(json)?.refusal === 'string',
  limitOutput(json, maxTokens, temperature) {
    if (json.max_completion_tokens !== undefined) json.max_completion_tokens = clamp(json.max_completion_tokens, maxTokens);
    else json.max_tokens = clamp(json.max_tokens, maxTokens);
    json.temperature = temperature;
  },
  composeAnswer(model, text, usage) {
    return JSON.stringify({
      id: composedId('chatcmpl-'),
      object: 'chat.completion',
      created: Math.floor(Date.now() / 1000),
      model,
      choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: 'stop' }],
      usage: { prompt_tokens: usage.input, completion_tokens: usage.output, total_tokens: usage.input + usage.output },
    });
  },
  composeStream(model, pieces, usage) {
    const id = composedId('chatcmpl-');
    const created = Math.floor(Date.now() / 1000);
    const chunk = (delta: object, finish: string | null, extra: object = {}) =>
      `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model, choices: [{ index: 0, delta, finish_reason: finish }], ...extra })}\n\n`;
    const total = { prompt_tokens: usage.input, completion_tokens: usage.output, total_tokens: usage.input + usage.output };
    return {
      start: [chunk({ role: 'assistant', content: '' }, null)],
      content: pieces.map((p) => chunk({ content: p }, null)),
      end: [chunk({}, 'stop', { usage: total }), 'data: [DONE]\n\n'],
    };
  },
  streamContentType: 'text/event-stream',
};
