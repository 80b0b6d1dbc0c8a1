/**
 * A deterministic model server that speaks OpenAI's Responses API
 * (`POST /v1/responses`) as the API reference and the openai SDK's types
 * describe it: a plain answer is a response object; a stream is named SSE
 * events whose JSON carries `type` and an increasing `sequence_number`
 * (response.created, response.in_progress, response.output_item.added,
 * response.content_part.added, one response.output_text.delta per token,
 * response.output_text.done, response.content_part.done,
 * response.output_item.done, then response.completed with usage), and no
 * [DONE]. It answers with the model it was asked for, records every call
 * with its headers, and misbehaves on cue: an `error` event before any text,
 * a late first delta, a cut after N tokens, `response.failed` after N tokens,
 * or an end at max_output_tokens (`response.incomplete`); a plain call with
 * a cut is reset before its headers.
 */
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { TestContext } from 'node:test';
import { listenForTest } from './test-server.js';

export const RESPONSE_TOKENS = Array.from({ length: 30 }, (_, i) => `r${i} `);
export const RESPONSE_TEXT = RESPONSE_TOKENS.join('');

export type ResponsesFault =
  | { errorBeforeText: true }
  | { firstDeltaAfterMs: number }
  | { cutAfter: number }
  | { failedAfter: number }
  | { incompleteAfter: number }
  /** The answer stops before any text: response.incomplete with reason content_filter. */
  | { filtered: true };

export interface ResponsesCall {
  n: number;
  headers: IncomingHttpHeaders;
  json: Record<string, any>;
}

export interface ResponsesUpstream {
  url: string;
  calls: ResponsesCall[];
}

const usage = (output: number) => ({ input_tokens: 12, input_tokens_details: { cached_tokens: 0 }, output_tokens: output, output_tokens_details: { reasoning_tokens: 0 }, total_tokens: 12 + output });

function response(model: string, status: string, text: string | undefined, output: number) {
  return {
    id: 'resp_fake1',
    object: 'response',
    created_at: 1765100000,
    status,
    error: null,
    incomplete_details: status === 'incomplete' ? { reason: 'max_output_tokens' } : null,
    instructions: null,
    max_output_tokens: null,
    model,
    output: text === undefined ? [] : [{ id: 'msg_fake1', type: 'message', status: status === 'completed' ? 'completed' : 'incomplete', role: 'assistant', content: [{ type: 'output_text', text, annotations: [], logprobs: [] }] }],
    parallel_tool_calls: true,
    previous_response_id: null,
    store: true,
    temperature: 1,
    text: { format: { type: 'text' } },
    tool_choice: 'auto',
    tools: [],
    top_p: 1,
    truncation: 'disabled',
    usage: text === undefined ? null : usage(output),
    metadata: {},
  };
}

export async function startResponsesUpstream(t: TestContext, fault?: (call: ResponsesCall) => ResponsesFault | undefined, gapMs = 2): Promise<ResponsesUpstream> {
  const calls: ResponsesCall[] = [];
  const timers = new Set<NodeJS.Timeout>();
  const later = (ms: number, fn: () => void) => {
    const timer = setTimeout(() => (timers.delete(timer), fn()), ms);
    timers.add(timer);
  };
  const server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      const json = (JSON.parse(body || '{}') as Record<string, any>) ?? {};
      const call: ResponsesCall = { n: calls.length + 1, headers: req.headers, json };
      calls.push(call);
      const f = fault?.(call);
      const model = String(json.model ?? 'model');
      if (!json.stream) {
        if (f && 'cutAfter' in f) return void req.socket.resetAndDestroy();
        res.writeHead(200, { 'content-type': 'application/json' });
        return void res.end(JSON.stringify(response(model, 'completed', RESPONSE_TEXT, RESPONSE_TOKENS.length)));
      }
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
      let sequence = 0;
      const event = (type: string, fields: object) => `event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: sequence++, ...fields })}\n\n`;
      const at = { item_id: 'msg_fake1', output_index: 0, content_index: 0 };
      res.write(event('response.created', { response: response(model, 'in_progress', undefined, 0) }) + event('response.in_progress', { response: response(model, 'in_progress', undefined, 0) }));
      if (f && 'filtered' in f) {
        return void res.end(event('response.incomplete', { response: { ...response(model, 'incomplete', undefined, 0), incomplete_details: { reason: 'content_filter' } } }));
      }
      if (f && 'errorBeforeText' in f) {
        return void res.end(event('error', { code: 'rate_limit_exceeded', message: 'Rate limit reached for requests', param: null }));
      }
      res.write(
        event('response.output_item.added', { output_index: 0, item: { id: 'msg_fake1', type: 'message', status: 'in_progress', role: 'assistant', content: [] } }) +
          event('response.content_part.added', { ...at, part: { type: 'output_text', text: '', annotations: [], logprobs: [] } }),
      );
      let i = 0;
      const next = () => {
        if (res.destroyed) return;
        if (f && 'cutAfter' in f && i === f.cutAfter) return void later(25, () => req.socket.resetAndDestroy());
        if (f && 'failedAfter' in f && i === f.failedAfter) {
          const failed = { ...response(model, 'failed', undefined, 0), error: { code: 'server_error', message: 'The model failed to generate a response.' } };
          return void res.end(event('response.failed', { response: failed }));
        }
        const stop = f && 'incompleteAfter' in f ? f.incompleteAfter : RESPONSE_TOKENS.length;
        if (i < stop) {
          res.write(event('response.output_text.delta', { ...at, delta: RESPONSE_TOKENS[i++]!, logprobs: [] }));
          return later(gapMs, next);
        }
        const text = RESPONSE_TOKENS.slice(0, stop).join('');
        const status = stop < RESPONSE_TOKENS.length ? 'incomplete' : 'completed';
        res.end(
          event('response.output_text.done', { ...at, text, logprobs: [] }) +
            event('response.content_part.done', { ...at, part: { type: 'output_text', text, annotations: [], logprobs: [] } }) +
            event('response.output_item.done', { output_index: 0, item: response(model, status, text, stop).output[0] }) +
            event(`response.${status}`, { response: response(model, status, text, stop) }),
        );
      };
      later(f && 'firstDeltaAfterMs' in f ? f.firstDeltaAfterMs : 0, next);
    });
  });
  return { url: await listenForTest(t, server, timers), calls };
}
