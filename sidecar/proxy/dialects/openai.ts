/**
 * OpenAI's API and everything that speaks it: vLLM, llama.cpp's server,
 * Ollama's /v1, Azure OpenAI, and gateways (LiteLLM and the like) that pass
 * other providers' error messages through, which is why its recognisers also
 * know Anthropic's and Ollama's texts.
 */
import type { Dialect, LocalErrorCode, Recogniser } from './types.js';
import { clamp, composedId, dataErrorEvent, jsonEventFailure, parseEventObject, OVERLOADED, prefillAssistant, statusMessage, usageReaders } from './shared.js';

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

export const openai: Dialect = {
  name: 'openai',
  errorBody: (code, text) => JSON.stringify({ error: { message: text, type: ERROR_TYPE[code], param: null, code } }),
  upstreamErrorBody(status, text = statusMessage(status)) {
    const type = status === 429 ? 'requests' : status >= 500 ? 'server_error' : 'invalid_request_error';
    return JSON.stringify({ error: { message: text, type, param: null, code: status === 429 ? 'rate_limit_exceeded' : null } });
  },
  streamError(framing, code, text) {
    return dataErrorEvent(framing, code, text, openai.errorBody(code, text));
  },
  terminated: (tail) => tail.includes('data: [DONE]'),
  streamText(_event, data) {
    if (data === '[DONE]') return undefined;
    const json = parseEventObject(data);
    const choices = json?.choices;
    if (!Array.isArray(choices)) return undefined;
    if (choices.length > 1) return null;
    const delta = choices[0]?.delta;
    if (delta?.tool_calls || delta?.function_call || delta?.reasoning_content || delta?.reasoning) return null;
    return typeof delta?.content === 'string' ? delta.content : undefined;
  },
  opensStream(_event, data) {
    const choice = parseEventObject(data)?.choices?.[0];
    return typeof choice?.delta?.role === 'string' && !choice.delta.content && !choice.finish_reason;
  },
  withStreamText(_event, data, text) {
    const json = JSON.parse(data) as Record<string, any>;
    json.choices[0].delta.content = text;
    return `data: ${JSON.stringify(json)}\n\n`;
  },
  continueWith(json, text, style) {
    if (!prefillAssistant(json, text)) return undefined;
    if (style === 'continue-final-message') {
      json.continue_final_message = true;
      json.add_generation_prompt = false;
    }
    return text.length;
  },
  eventFailure: jsonEventFailure((_event, json) => json.error, OPENAI_RECOGNISERS),
  missingTerminator: (tail) => (/"finish_reason"\s*:\s*"[^"]+"/.test(tail) ? 'data: [DONE]\n\n' : undefined),
  ...usageReaders(['prompt_tokens'], ['completion_tokens']),
  recognisers: OPENAI_RECOGNISERS,
  streamsByDefault: false,
  answerText: (json) => message(json)?.content ?? undefined,
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
