/**
 * Ollama's native API (/api/chat and /api/generate): streams NDJSON unless
 * told not to, ends with a `"done": true` line, counts tokens in
 * prompt_eval_count and eval_count, and puts options under `options`.
 * (Its OpenAI-compatible /v1 is the openai dialect.)
 */
import type { Dialect, Recogniser } from './types.js';
import { clamp, jsonEventFailure, ndjsonError, OVERLOADED, parseEventObject, prefillAssistant, statusMessage, usageReaders } from './shared.js';

const OLLAMA_RECOGNISERS: Recogniser[] = [{ class: 'context-length', pattern: /context length|context window/i, source: 'Ollama' }, OVERLOADED];

function ollamaDialect(endpoint: 'chat' | 'generate'): Dialect {
  const content = (text: string) => (endpoint === 'chat' ? { message: { role: 'assistant', content: text } } : { response: text });
  const line = (model: string, text: string, done: boolean, extra: object = {}) =>
    JSON.stringify({ model, created_at: new Date().toISOString(), ...content(text), done, ...extra }) + '\n';
  return {
    name: `ollama-${endpoint}`,
    errorBody: (code, text) => JSON.stringify({ error: `${code}: ${text}` }),
    upstreamErrorBody: (status, text = statusMessage(status)) => JSON.stringify({ error: text }),
    streamError: (_framing, code, text) => ndjsonError(code, text),
    terminated: (tail) => /"done"\s*:\s*true/.test(tail),
    missingTerminator: () => undefined, // "done": true is both the finish and the terminator
    streamText(_event, data) {
      const json = parseEventObject(data);
      if (json?.message?.tool_calls || json?.message?.thinking || json?.thinking) return null;
      const text = endpoint === 'chat' ? json?.message?.content : json?.response;
      return typeof text === 'string' && text !== '' ? text : undefined;
    },
    opensStream: () => false, // each line stands alone
    withStreamText(_event, data, text) {
      const json = JSON.parse(data) as Record<string, any>;
      if (endpoint === 'chat') json.message = { ...json.message, content: text };
      else json.response = text;
      return JSON.stringify(json) + '\n';
    },
    // /api/generate wraps its prompt in the model's template: only a chat's assistant turn can be continued.
    continueWith: (json, text) => (endpoint === 'chat' && prefillAssistant(json, text) ? text.length : undefined),
    eventFailure: jsonEventFailure((_event, json) => (typeof json.error === 'string' ? json.error : undefined), OLLAMA_RECOGNISERS),
    ...usageReaders(['prompt_eval_count'], ['eval_count']),
    recognisers: OLLAMA_RECOGNISERS,
    streamsByDefault: true,
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
