/**
 * A deterministic model server on 127.0.0.1 that fails on cue. It answers
 * every request with one canonical answer, in OpenAI's or Anthropic's shape
 * (by path), plain or streamed a token per event, with usage and the model
 * it was asked for (or its own). A request whose chat ends in an assistant
 * message is a prefill: the server continues the canonical answer after it,
 * rejects it with a 400 as a model without prefill does, or ignores it as
 * OpenAI does, as told. Before each answer it asks `fault(call)` how to
 * misbehave: an error status, a reset before headers, silence, a late first
 * token, a cut, a stall, a malformed event, or a stream without its
 * terminator. It records every call with its time and parsed body.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { TestContext } from 'node:test';

export const TOKENS = Array.from({ length: 60 }, (_, i) => `w${i} `);
export const CANONICAL = TOKENS.join('');

export type Fault =
  | { status: number; headers?: Record<string, string>; body?: string }
  | { reset: 'before-headers' }
  | { silent: true }
  | { firstTokenAfterMs: number }
  | { cutAfter: number }
  | { stallAfter: number }
  | { malformedAt: number }
  /** After the last token and the finish (and usage): the connection ends cleanly, resets, or stays open, without the terminator. */
  | { noTerminator: 'end' | 'reset' | 'hold' };

export interface Call {
  n: number;
  at: number;
  path: string;
  json: Record<string, any>;
}

export interface ModelUpstreamOptions {
  /** The model named in answers (default: the one asked for). */
  model?: string;
  prefill?: 'continues' | 'rejects' | 'ignores';
  /** How call `n` (from 1) misbehaves; undefined: it answers well. */
  fault?: (call: Call) => Fault | undefined;
  /** Milliseconds between stream events. */
  tokenGapMs?: number;
}

export interface ModelUpstream {
  url: string;
  calls: Call[];
}

const PREFILL_REJECTION = JSON.stringify({
  type: 'error',
  error: { type: 'invalid_request_error', message: 'This model does not support assistant message prefill. The conversation must end with a user message.' },
});

export async function startModelUpstream(t: TestContext, options: ModelUpstreamOptions = {}): Promise<ModelUpstream> {
  const calls: Call[] = [];
  const sockets = new Set<Socket>();
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
      let json: Record<string, any> = {};
      try {
        json = JSON.parse(body) as Record<string, any>;
      } catch {
        // answered as an empty request
      }
      const call: Call = { n: calls.length + 1, at: Date.now(), path: req.url ?? '', json };
      calls.push(call);
      answer(req, res, call, options.fault?.(call));
    });
  });

  function answer(req: IncomingMessage, res: ServerResponse, call: Call, fault: Fault | undefined): void {
    const anthropic = call.path.includes('/messages');
    if (fault && 'reset' in fault) return void req.socket.resetAndDestroy();
    if (fault && 'silent' in fault) return;
    if (fault && 'status' in fault) {
      res.writeHead(fault.status, { 'content-type': 'application/json', ...fault.headers });
      return void res.end(fault.body ?? JSON.stringify({ error: { message: `status ${fault.status}`, type: 'server_error' } }));
    }
    const prefix = prefillOf(call.json);
    if (prefix !== undefined && options.prefill === 'rejects') {
      res.writeHead(400, { 'content-type': 'application/json' });
      return void res.end(PREFILL_REJECTION);
    }
    const continues = prefix !== undefined && options.prefill === 'continues' && (anthropic || call.json.continue_final_message === true);
    const tokens = continues ? rest(prefix) : TOKENS;
    const model = options.model ?? String(call.json.model ?? 'model');
    const usage = { input: 11, output: tokens.length };
    if (!call.json.stream) {
      res.writeHead(200, { 'content-type': 'application/json' });
      const text = tokens.join('');
      return void res.end(
        anthropic
          ? JSON.stringify({ id: 'msg_1', type: 'message', role: 'assistant', model, content: [{ type: 'text', text }], stop_reason: 'end_turn', usage: { input_tokens: usage.input, output_tokens: usage.output } })
          : JSON.stringify({ id: 'c1', object: 'chat.completion', model, choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: 'stop' }], usage: { prompt_tokens: usage.input, completion_tokens: usage.output, total_tokens: usage.input + usage.output } }),
      );
    }
    const events = anthropic ? anthropicEvents(model, tokens, usage) : openaiEvents(model, tokens, usage, call.json.stream_options?.include_usage === true);
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write(events.opening);
    let i = 0;
    const next = () => {
      if (res.destroyed) return;
      if (fault && 'cutAfter' in fault && i === fault.cutAfter) return void req.socket.resetAndDestroy();
      if (fault && 'stallAfter' in fault && i === fault.stallAfter) return;
      if (fault && 'malformedAt' in fault && i === fault.malformedAt) res.write('data: {"choices": [{"delta": {"content": "garbage\n\n');
      if (i < events.tokens.length) {
        res.write(events.tokens[i++]!);
        return later(options.tokenGapMs ?? 2, next);
      }
      if (fault && 'noTerminator' in fault) {
        res.write(events.finish);
        if (fault.noTerminator === 'end') res.end();
        if (fault.noTerminator === 'reset') later(20, () => req.socket.resetAndDestroy());
        return;
      }
      res.end(events.finish + events.terminator);
    };
    later(fault && 'firstTokenAfterMs' in fault ? fault.firstTokenAfterMs : 0, next);
  }

  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(async () => {
    timers.forEach(clearTimeout);
    sockets.forEach((s) => s.destroy());
    await new Promise((resolve) => server.close(resolve));
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, calls };
}

/** The text of a trailing assistant message, or undefined. */
function prefillOf(json: Record<string, any>): string | undefined {
  const last = Array.isArray(json.messages) ? json.messages.at(-1) : undefined;
  if (last?.role !== 'assistant') return undefined;
  return typeof last.content === 'string' ? last.content : undefined;
}

/** The canonical tokens after `prefix` (the first one cut where the prefix ends within it). */
function rest(prefix: string): string[] {
  if (!CANONICAL.startsWith(prefix)) return ['(no continuation of that)'];
  const after = CANONICAL.slice(prefix.length);
  const out: string[] = [];
  let at = 0;
  for (const token of TOKENS) {
    const start = at;
    at += token.length;
    if (at <= prefix.length) continue;
    out.push(token.slice(Math.max(0, prefix.length - start)));
  }
  return after === '' ? [] : out;
}

interface StreamEvents {
  opening: string;
  tokens: string[];
  /** The finish event(s), with usage. */
  finish: string;
  terminator: string;
}

function openaiEvents(model: string, tokens: string[], usage: { input: number; output: number }, includeUsage: boolean): StreamEvents {
  const chunk = (choices: object[], extra: object = {}) => `data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', model, choices, ...extra })}\n\n`;
  const usageChunk = includeUsage ? chunk([], { usage: { prompt_tokens: usage.input, completion_tokens: usage.output, total_tokens: usage.input + usage.output } }) : '';
  return {
    opening: chunk([{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }]),
    tokens: tokens.map((content) => chunk([{ index: 0, delta: { content }, finish_reason: null }])),
    finish: chunk([{ index: 0, delta: {}, finish_reason: 'stop' }]) + usageChunk,
    terminator: 'data: [DONE]\n\n',
  };
}

function anthropicEvents(model: string, tokens: string[], usage: { input: number; output: number }): StreamEvents {
  const event = (type: string, data: object = {}) => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
  return {
    opening:
      event('message_start', { message: { id: 'msg_1', type: 'message', role: 'assistant', model, content: [], stop_reason: null, usage: { input_tokens: usage.input, output_tokens: 1 } } }) +
      event('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }),
    tokens: tokens.map((text) => event('content_block_delta', { index: 0, delta: { type: 'text_delta', text } })),
    finish: event('content_block_stop', { index: 0 }) + event('message_delta', { delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: usage.output } }),
    terminator: event('message_stop'),
  };
}
