/**
 * Ollama's native API (/api/chat and /api/generate): streams NDJSON unless
 * told not to, ends with a `"done": true` line, counts tokens in
 * prompt_eval_count and eval_count, and puts options under `options`.
 * (Its OpenAI-compatible /v1 is the openai dialect.)
 */
import type { Dialect, EventReading, Recogniser } from './types.js';
import { answerUsageReader, asObject, clamp, ContentCollector, errorReading, FIRST_CHOICE, malformed, MALFORMED, OVERLOADED, parseJson, positive, prefillAssistant, setTopLevelModel, statusMessage, topLevelFields, usageOf } from './shared.js';

const OLLAMA_RECOGNISERS: Recogniser[] = [{ class: 'context-length', pattern: /context length|context window/i, source: 'Ollama' }, OVERLOADED];

const NOTHING: EventReading = {};

/** What a line says, with its parse and its content (thinking, text, and tool calls, which come whole, as their JSON). */
function readLine(endpoint: 'chat' | 'generate', data: string, forRewrite: boolean): { json: Record<string, any>; reading: EventReading; pieces: ContentCollector } | EventReading {
  const parsed = parseJson(data);
  if (parsed === MALFORMED) return malformed(data);
  const json = asObject(parsed);
  if (!json) return NOTHING;
  if (typeof json.error === 'string') return errorReading(json.error, OLLAMA_RECOGNISERS);
  const pieces = new ContentCollector(forRewrite);
  const holder = endpoint === 'chat' ? asObject(json.message) : json;
  if (holder) {
    pieces.field(holder, 'thinking', 'reasoning');
    pieces.field(holder, endpoint === 'chat' ? 'content' : 'response', 'text', () => (holder[endpoint === 'chat' ? 'content' : 'response'] = ''));
    const calls: unknown = holder.tool_calls;
    if (endpoint === 'chat' && Array.isArray(calls) && calls.length > 0) pieces.piece('tools', JSON.stringify(calls), (v) => (v === undefined ? delete holder.tool_calls : (holder.tool_calls = JSON.parse(v))));
  }
  const reading = pieces.into({});
  if (json.done === true) {
    // The done line is both the finish and the terminator.
    reading.terminal = true;
    reading.finished = FIRST_CHOICE;
    reading.usage = usageOf(json.prompt_eval_count, json.eval_count);
  }
  return { json, reading, pieces };
}

function ollamaDialect(endpoint: 'chat' | 'generate'): Dialect {
  const content = (text: string) => (endpoint === 'chat' ? { message: { role: 'assistant', content: text } } : { response: text });
  const line = (model: string, text: string, done: boolean, extra: object = {}) =>
    JSON.stringify({ model, created_at: new Date().toISOString(), ...content(text), done, ...extra }) + '\n';
  return {
    name: `ollama-${endpoint}`,
    readRequest: (json) => ({
      ...topLevelFields(json),
      maxTokens: positive(asObject(json.options)?.num_predict),
      jsonMode: json.format === 'json' || asObject(json.format) !== undefined || undefined,
    }),
    outputCapFields: ['num_predict'],
    setModel: setTopLevelModel,
    streamsByDefault: true,
    replaysSafely: true,
    errorBody: (code, text) => JSON.stringify({ error: `${code}: ${text}` }),
    upstreamErrorBody: (status, text = statusMessage(status)) => JSON.stringify({ error: text }),
    streamError: (code, text) => ({ data: JSON.stringify({ error: `${code}: ${text}`, done: true }) }),
    readEvent(_event, data) {
      const read = readLine(endpoint, data, false);
      return 'reading' in read ? read.reading : read;
    },
    terminator: undefined, // the done line carries the finish: a stream without it was cut
    endsWithTerminator: true,
    withContent(_event, data, keep) {
      const read = readLine(endpoint, data, true);
      if (!('pieces' in read)) return data + '\n';
      read.pieces.keep(keep);
      return JSON.stringify(read.json) + '\n';
    },
    // /api/generate wraps its prompt in the model's template: only a chat's assistant turn can be continued.
    continueWith: (json, text) => (endpoint === 'chat' && prefillAssistant(json, text) ? text.length : undefined),
    answerUsage: answerUsageReader(['prompt_eval_count'], ['eval_count']),
    recognisers: OLLAMA_RECOGNISERS,
    answerText: (json) => (endpoint === 'chat' ? json.message?.content : json.response),
    hasToolCalls: (json) => Boolean(json.message?.tool_calls?.length),
    refused: () => false,
    limitOutput(json, maxTokens, temperature) {
      const options = typeof json.options === 'object' && json.options !== null ? json.options : {};
      json.options = { ...options, num_predict: clamp(options.num_predict, maxTokens), temperature };
    },
    composeAnswer: (model, text, usage) =>
      line(model, text, true, { done_reason: 'stop', prompt_eval_count: usage.input, eval_count: usage.output }).trimEnd(),
    composeStream: (model, pieces, usage) => ({
      start: [],
      content: pieces.map((p) => line(model, p, false)),
      end: [line(model, '', true, { done_reason: 'stop', prompt_eval_count: usage.input, eval_count: usage.output })],
    }),
    streamContentType: 'application/x-ndjson',
  };
}

export const ollamaChat = ollamaDialect('chat');
export const ollamaGenerate = ollamaDialect('generate');
