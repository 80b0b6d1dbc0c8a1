/**
 * Success answers in the shapes real model servers use: OpenAI chat
 * completions, Anthropic messages and Ollama chat/generate, plain and streamed
 * (SSE for OpenAI and Anthropic, NDJSON for Ollama). The sidecar builds its
 * static and cached answers with them; the mock upstream its replies.
 */

export type AnswerShape = 'openai' | 'anthropic' | 'ollama-chat' | 'ollama-generate';

export function apiOfPath(path: string): AnswerShape {
  if (path.includes('/messages')) return 'anthropic';
  if (path.startsWith('/api/generate')) return 'ollama-generate';
  if (path.startsWith('/api/')) return 'ollama-chat';
  return 'openai';
}

export function isStreamRequest(api: AnswerShape, body: Record<string, unknown>): boolean {
  // Ollama streams unless told not to; the others only when asked.
  return api.startsWith('ollama') ? body.stream !== false : body.stream === true;
}

export interface Usage {
  input: number;
  output: number;
}

export function completeBody(api: AnswerShape, model: string, text: string, usage: Usage): string {
  const created = Math.floor(Date.now() / 1000);
  switch (api) {
    case 'openai':
      return JSON.stringify({
        id: 'chatcmpl-mock',
        object: 'chat.completion',
        created,
        model,
        choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: 'stop' }],
        usage: { prompt_tokens: usage.input, completion_tokens: usage.output, total_tokens: usage.input + usage.output },
      });
    case 'anthropic':
      return JSON.stringify({
        id: 'msg_mock',
        type: 'message',
        role: 'assistant',
        model,
        content: [{ type: 'text', text }],
        stop_reason: 'end_turn',
        stop_sequence: null,
        usage: { input_tokens: usage.input, output_tokens: usage.output },
      });
    case 'ollama-chat':
    case 'ollama-generate':
      return JSON.stringify({
        model,
        created_at: new Date().toISOString(),
        ...(api === 'ollama-chat' ? { message: { role: 'assistant', content: text } } : { response: text }),
        done: true,
        done_reason: 'stop',
        prompt_eval_count: usage.input,
        eval_count: usage.output,
      });
  }
}

/** The events of a stream: `start` (before content), one per content piece, and `end` (terminator included). */
export function streamEvents(api: AnswerShape, model: string, pieces: string[], usage: Usage): { start: string[]; content: string[]; end: string[] } {
  const created = Math.floor(Date.now() / 1000);
  switch (api) {
    case 'openai': {
      const chunk = (delta: object, finish: string | null, extra: object = {}) =>
        `data: ${JSON.stringify({ id: 'chatcmpl-mock', object: 'chat.completion.chunk', created, model, choices: [{ index: 0, delta, finish_reason: finish }], ...extra })}\n\n`;
      return {
        start: [chunk({ role: 'assistant', content: '' }, null)],
        content: pieces.map((p) => chunk({ content: p }, null)),
        end: [
          chunk({}, 'stop', { usage: { prompt_tokens: usage.input, completion_tokens: usage.output, total_tokens: usage.input + usage.output } }),
          'data: [DONE]\n\n',
        ],
      };
    }
    case 'anthropic': {
      const event = (type: string, data: object) => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
      return {
        start: [
          event('message_start', {
            message: { id: 'msg_mock', type: 'message', role: 'assistant', model, content: [], stop_reason: null, usage: { input_tokens: usage.input, output_tokens: 1 } },
          }),
          event('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }),
        ],
        content: pieces.map((p) => event('content_block_delta', { index: 0, delta: { type: 'text_delta', text: p } })),
        end: [
          event('content_block_stop', { index: 0 }),
          event('message_delta', { delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: usage.output } }),
          event('message_stop', {}),
        ],
      };
    }
    case 'ollama-chat':
    case 'ollama-generate': {
      const line = (content: string, done: boolean, extra: object = {}) =>
        JSON.stringify({
          model,
          created_at: new Date().toISOString(),
          ...(api === 'ollama-chat' ? { message: { role: 'assistant', content } } : { response: content }),
          done,
          ...extra,
        }) + '\n';
      return {
        start: [],
        content: pieces.map((p) => line(p, false)),
        end: [line('', true, { done_reason: 'stop', prompt_eval_count: usage.input, eval_count: usage.output })],
      };
    }
  }
}

/** The text of a parsed plain answer in any of these shapes (undefined if it has none). */
export function textOf(shape: AnswerShape, json: Record<string, any>): string | undefined {
  if (shape === 'openai') return json.choices?.[0]?.message?.content ?? undefined;
  if (shape === 'anthropic') return json.content?.find?.((c: { type: string }) => c.type === 'text')?.text;
  if (shape === 'ollama-chat') return json.message?.content;
  return json.response;
}

/** The text of a plain answer body in any of these shapes (undefined if it has none or is not JSON). */
export function answerText(shape: AnswerShape, body: string): string | undefined {
  try {
    return textOf(shape, JSON.parse(body) as Record<string, any>);
  } catch {
    return undefined;
  }
}

/** An error body in the API's shape, for a status the mock is told to answer with. */
export function errorBodyFor(api: AnswerShape, status: number, message?: string): string {
  const text = message ?? (status === 429 ? 'Rate limit reached for requests' : status >= 500 ? 'The server had an error while processing your request.' : 'Invalid request');
  if (api === 'anthropic') {
    const type = status === 429 ? 'rate_limit_error' : status === 529 ? 'overloaded_error' : status >= 500 ? 'api_error' : 'invalid_request_error';
    return JSON.stringify({ type: 'error', error: { type, message: text } });
  }
  if (api.startsWith('ollama')) return JSON.stringify({ error: text });
  const type = status === 429 ? 'requests' : status >= 500 ? 'server_error' : 'invalid_request_error';
  return JSON.stringify({ error: { message: text, type, param: null, code: status === 429 ? 'rate_limit_exceeded' : null } });
}
