/**
 * A deterministic model server on 127.0.0.1 that fails on cue. It answers
 * every request with one canonical answer, in OpenAI's, Anthropic's or
 * Ollama's shape (by path: `/messages` is Anthropic's Messages API,
 * `/api/chat` Ollama's native chat, anything else OpenAI's Chat
 * Completions), plain or streamed a token per event, with usage and the
 * model it was asked for (or its own). A request whose chat ends in an
 * assistant message is a prefill: the server continues the canonical answer
 * after it, rejects it with a 400 as a model without prefill does, ignores
 * it as OpenAI does, accepts it but restarts its answer from the beginning
 * (an Ollama model whose template drops a trailing assistant message), or
 * repeats the last word it was given before going on, as told. Before each
 * answer it asks `fault(call)` how to misbehave: an error status, a reset
 * before headers, silence (for ever or for a while), a late first token, a
 * cut, a clean end mid-answer, a stall, a malformed event, an in-stream
 * error event, or a stream without its terminator. It records every call with its time and parsed
 * body.
 *
 * The answer can also be a tool call (when the request offers tools and
 * `toolCall` is set), can think first (`reasoning`: OpenAI-compatible
 * `delta.reasoning_content` as vLLM and DeepSeek send it, an Anthropic
 * thinking block, Ollama's `message.thinking`), can have two choices
 * (OpenAI `n: 2`, interleaved), and its SSE can be framed with CR or CRLF
 * line endings or end with `data:[DONE]`. The byte shapes are those of the
 * providers as their official SDKs read them (`realistic` adds the fields
 * real providers send that the minimal shape leaves out).
 *
 * Fault positions (`cutAfter`, `endAfter`, `stallAfter`, `malformedAt`, `errorEventAt`)
 * count content events: text deltas, reasoning deltas, tool-call argument
 * fragments (and the tool call's first chunk on OpenAI). Structural events
 * (a block's start or stop, a choice's finish) go out with the content
 * event before them. Positions are positions in the whole answer: a
 * response that continues a prefill starts where the prefill ends, so a
 * fault at word 40 comes at once in a continuation from word 40 (or from
 * any later word), as it does for a primary that breaks at the same point
 * of the answer each time; a restarted answer starts at word 0 again.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { TestContext } from 'node:test';
import { listenForTest } from './test-server.js';

export const TOKENS = Array.from({ length: 60 }, (_, i) => `w${i} `);
export const CANONICAL = TOKENS.join('');

/** The reasoning a thinking model streams before its answer when `reasoning` is given a count. */
export const reasoningTokens = (n: number) => Array.from({ length: n }, (_, i) => `r${i} `);

/** The two choices' texts of an `n: 2` answer: choice 0 stops after 30 words, choice 1 goes on to 60. */
export const TWO_CHOICES = [TOKENS.slice(0, 30).join(''), CANONICAL] as const;
/** Content events of an `n: 2` answer before choice 1's word `k` (k > 30): both choices' first 30 words, then choice 1's. */
export const twoChoiceEventsBefore = (k: number) => 30 + k;

/**
 * What a model writes when it mentions its API's terminator in its text
 * (a model explaining SSE): the literal terminator, as text inside a delta.
 */
export const TERMINATOR_MENTION = {
  openai: 'data: [DONE]\n\n',
  anthropic: 'event: message_stop\ndata: {"type":"message_stop"}\n\n',
  ollama: '{"done":true}\n',
} as const;

export type Api = 'openai' | 'anthropic' | 'ollama';

export type Fault =
  | { status: number; headers?: Record<string, string>; body?: string }
  | { reset: 'before-headers' }
  | { silent: true }
  /** No headers, nothing, for this long; then a good answer. */
  | { silentForMs: number }
  /** The headers and the opening (role chunk, message_start) at once; the first content event this much later. */
  | { firstTokenAfterMs: number }
  /** After this many content events, the connection is reset (TCP RST), 25 ms after the last one was written. */
  | { cutAfter: number }
  /** After this many content events, silence: for ever (the connection held open), or `stallMs` then the rest. */
  | { stallAfter: number; stallMs?: number }
  /** Before content event `malformedAt`, one event that does not parse (in the API's framing), then the rest. */
  | { malformedAt: number }
  /** After this many content events, the API's in-stream error event, then the response ends. */
  | { errorEventAt: number }
  /** After this many content events, the response ends cleanly (a proper last chunk), with no finish and no terminator. */
  | { endAfter: number }
  /** After the last token and the finish (and usage): the connection ends cleanly, resets, or stays open, without the terminator. */
  | { noTerminator: 'end' | 'reset' | 'hold' };

export interface Call {
  n: number;
  at: number;
  path: string;
  json: Record<string, any>;
  /** The request's headers as they came. */
  headers: IncomingMessage['headers'];
}

export interface ToolCall {
  name: string;
  /** The arguments, as the JSON text the model writes. */
  arguments: string;
  /** The call's id (OpenAI `call_…`, Anthropic `toolu_…`); a default per API otherwise. */
  id?: string;
  /** Text the model writes before the call (Claude often does: "I'll check the weather."), word by word. */
  preface?: string;
  /** Characters per argument fragment (default 4, about a token, as providers stream them). */
  fragment?: number;
}

export interface ModelUpstreamOptions {
  /** The model named in answers (default: the one asked for). */
  model?: string;
  /**
   * What a trailing assistant message (a prefill) gets: `continues` (Anthropic, Ollama's /api/chat, and
   * OpenAI-compatible servers asked with `continue_final_message`), `rejects` (a 400, as a model without
   * prefill), `ignores` (a new answer, as OpenAI), `restarts` (accepted, but the answer starts again from its
   * first word: an Ollama model whose template drops a trailing assistant message), `overlaps` (accepted, and the
   * answer goes on from the start of the prefill's last word, so that word comes twice). Default: ignored.
   */
  prefill?: 'continues' | 'rejects' | 'ignores' | 'restarts' | 'overlaps';
  /** How call `n` (from 1) misbehaves; undefined: it answers well. */
  fault?: (call: Call) => Fault | undefined;
  /** Milliseconds between stream events. */
  tokenGapMs?: number;
  /** The answer's text, token by token (default TOKENS). */
  tokens?: string[];
  /** Replaces token `doneMentionAt` of the answer with TERMINATOR_MENTION of the API that is asked. */
  doneMentionAt?: number;
  /** Reasoning streamed before the text (a thinking model): the tokens, or how many (reasoningTokens(n)). */
  reasoning?: string[] | number;
  /** Milliseconds after each reasoning event (default tokenGapMs). */
  reasoningGapMs?: number;
  /** When the request offers tools: the answer is this tool call. */
  toolCall?: ToolCall;
  /** SSE line endings: LF (default), bare CR, or CRLF (all three are allowed by the WHATWG spec). */
  framing?: 'lf' | 'cr' | 'crlf';
  /** OpenAI: the terminator is written `data:[DONE]`, without the space. */
  noSpaceDone?: boolean;
  /** SSE: every field is written without the space after the colon (`data:{…}`, `event:…`). */
  noSpaceFields?: boolean;
  /** OpenAI: the number of choices (default: the request's `n`, else 1); 2 streams TWO_CHOICES interleaved. */
  choices?: 1 | 2;
  /**
   * The fields real providers send that the minimal shape leaves out: OpenAI's created, system_fingerprint,
   * service_tier, logprobs: null, refusal: null, and usage: null on every chunk when usage is asked for;
   * Anthropic's ping event, stop_sequence and cache counts; a charset on SSE content types.
   */
  realistic?: boolean;
}

export interface ModelUpstream {
  url: string;
  calls: Call[];
}

export function apiOf(path: string): Api {
  if (path.includes('/messages')) return 'anthropic';
  if (path.includes('/api/chat')) return 'ollama';
  return 'openai';
}

/** The text tokens an upstream with these options answers with, for this API. */
export function answerTokens(api: Api, options: Pick<ModelUpstreamOptions, 'tokens' | 'doneMentionAt'> = {}): string[] {
  const tokens = [...(options.tokens ?? TOKENS)];
  if (options.doneMentionAt !== undefined) tokens[options.doneMentionAt] = TERMINATOR_MENTION[api];
  return tokens;
}

/** Fragments of a tool call's arguments, as a provider streams them. */
export function argumentFragments(call: ToolCall): string[] {
  const size = call.fragment ?? 4;
  const out: string[] = [];
  for (let i = 0; i < call.arguments.length; i += size) out.push(call.arguments.slice(i, i + size));
  return out;
}

const REJECTIONS = {
  prefill: 'This model does not support assistant message prefill. The conversation must end with a user message.',
  trailingWhitespace: 'messages: final assistant content cannot end with trailing whitespace',
};

function errorBody(api: Api, status: number, message: string, type = 'invalid_request_error'): string {
  if (api === 'anthropic') return JSON.stringify({ type: 'error', error: { type: status === 400 ? type : status === 429 ? 'rate_limit_error' : status === 529 ? 'overloaded_error' : 'api_error', message } });
  if (api === 'ollama') return JSON.stringify({ error: message });
  return JSON.stringify({ error: { message, type: status === 400 ? type : 'server_error', param: null, code: null } });
}

export async function startModelUpstream(t: TestContext, options: ModelUpstreamOptions = {}): Promise<ModelUpstream> {
  const calls: Call[] = [];
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
      const call: Call = { n: calls.length + 1, at: Date.now(), path: req.url ?? '', json, headers: req.headers };
      calls.push(call);
      answer(req, res, call, options.fault?.(call));
    });
  });

  function answer(req: IncomingMessage, res: ServerResponse, call: Call, fault: Fault | undefined): void {
    const api = apiOf(call.path);
    if (fault && 'reset' in fault) return void req.socket.resetAndDestroy();
    if (fault && 'silent' in fault) return;
    if (fault && 'silentForMs' in fault) return later(fault.silentForMs, () => answer(req, res, call, undefined));
    if (fault && 'status' in fault) {
      res.writeHead(fault.status, { 'content-type': 'application/json', ...fault.headers });
      return void res.end(fault.body ?? errorBody(api, fault.status, `status ${fault.status}`));
    }
    const prefix = prefillOf(call.json);
    if (prefix !== undefined && options.prefill === 'rejects') {
      res.writeHead(400, { 'content-type': 'application/json' });
      return void res.end(errorBody(api, 400, REJECTIONS.prefill));
    }
    const accepted = options.prefill === 'continues' || options.prefill === 'restarts' || options.prefill === 'overlaps';
    if (prefix !== undefined && accepted && api === 'anthropic' && /\s$/.test(prefix)) {
      // The Messages API refuses a prefill that ends in whitespace.
      res.writeHead(400, { 'content-type': 'application/json' });
      return void res.end(errorBody(api, 400, REJECTIONS.trailingWhitespace));
    }
    const canonical = answerTokens(api, options);
    const takesPrefill = prefix !== undefined && accepted && (api !== 'openai' || call.json.continue_final_message === true);
    const tokens = !takesPrefill ? canonical : options.prefill === 'continues' ? rest(canonical, prefix) : options.prefill === 'overlaps' ? overlap(canonical, prefix) : canonical;
    /** The answer position of this response's first text token (the partly given token, for a continuation). */
    const offset = canonical.length - tokens.length;
    const model = options.model ?? String(call.json.model ?? 'model');
    const tool = options.toolCall && Array.isArray(call.json.tools) && call.json.tools.length > 0 ? options.toolCall : undefined;
    const reasoning = typeof options.reasoning === 'number' ? reasoningTokens(options.reasoning) : (options.reasoning ?? []);
    const streamed = api === 'ollama' ? call.json.stream !== false : call.json.stream === true;
    if (!streamed) {
      res.writeHead(200, { 'content-type': 'application/json' });
      return void res.end(plainAnswer(api, model, tokens, reasoning, tool));
    }
    const ctx: Shape = { model, tokens, reasoning, tool, realistic: options.realistic === true, reasoningGapMs: options.reasoningGapMs };
    const events =
      api === 'anthropic'
        ? anthropicEvents(ctx)
        : api === 'ollama'
          ? ollamaEvents(ctx)
          : openaiEvents(ctx, call.json.stream_options?.include_usage === true, options.choices ?? (call.json.n === 2 ? 2 : 1), options.noSpaceDone === true);
    const sse = api !== 'ollama';
    const eol = options.framing === 'cr' ? '\r' : options.framing === 'crlf' ? '\r\n' : '\n';
    const frame = (s: string) => {
      let out = s;
      if (sse && options.noSpaceFields) out = out.replace(/^(data|event): /gm, '$1:');
      if (sse && eol !== '\n') out = out.replace(/\n/g, eol);
      return out;
    };
    const write = (s: string) => (s === '' ? true : res.write(frame(s)));
    const charset = options.realistic && sse ? '; charset=utf-8' : '';
    res.writeHead(200, { 'content-type': (sse ? 'text/event-stream' : 'application/x-ndjson') + charset });
    write(events.opening);
    let j = 0; // events written
    let k = 0; // content events written
    let stalled = false;
    let malformed = false;
    const next = () => {
      if (res.destroyed) return;
      const event = events.body[j];
      if (!event || event.content) {
        const at = k + offset; // the answer position of the next content event
        if (fault && 'cutAfter' in fault && at >= fault.cutAfter) return later(25, () => req.socket.resetAndDestroy());
        if (fault && 'stallAfter' in fault && at >= fault.stallAfter && !stalled) {
          stalled = true;
          if (fault.stallMs !== undefined) later(fault.stallMs, next);
          return;
        }
        if (fault && 'errorEventAt' in fault && at >= fault.errorEventAt) return void res.end(frame(errorEvent(api)));
        if (fault && 'endAfter' in fault && at >= fault.endAfter) return void res.end();
        if (fault && 'malformedAt' in fault && at >= fault.malformedAt && !malformed) {
          malformed = true;
          write(malformedEvent(api, model));
        }
      }
      if (event) {
        write(event.text);
        j++;
        if (event.content) k++;
        return later(event.gapAfterMs ?? options.tokenGapMs ?? 2, next);
      }
      if (fault && 'noTerminator' in fault) {
        write(events.finish);
        if (fault.noTerminator === 'end') res.end();
        if (fault.noTerminator === 'reset') later(20, () => req.socket.resetAndDestroy());
        return;
      }
      res.end(frame(events.finish + events.terminator));
    };
    later(fault && 'firstTokenAfterMs' in fault ? fault.firstTokenAfterMs : 0, next);
  }

  return { url: await listenForTest(t, server, timers), calls };
}

/** The text of a trailing assistant message (a string, or text blocks), or undefined. */
export function prefillOf(json: Record<string, any>): string | undefined {
  const last = Array.isArray(json.messages) ? json.messages.at(-1) : undefined;
  if (last?.role !== 'assistant') return undefined;
  if (typeof last.content === 'string') return last.content;
  if (Array.isArray(last.content)) return last.content.map((b: any) => (b?.type === 'text' && typeof b.text === 'string' ? b.text : '')).join('');
  return undefined;
}

/** The canonical tokens after `prefix` (the first one cut where the prefix ends within it). */
function rest(tokens: string[], prefix: string): string[] {
  const canonical = tokens.join('');
  if (!canonical.startsWith(prefix)) return ['(no continuation of that)'];
  const out: string[] = [];
  let at = 0;
  for (const token of tokens) {
    const start = at;
    at += token.length;
    if (at <= prefix.length) continue;
    out.push(token.slice(Math.max(0, prefix.length - start)));
  }
  return canonical.length === prefix.length ? [] : out;
}

/** The canonical tokens from the start of the prefix's last word: that word comes again. */
function overlap(tokens: string[], prefix: string): string[] {
  const lastWord = prefix.trimEnd().search(/\S+$/);
  return rest(tokens, lastWord <= 0 ? '' : prefix.slice(0, lastWord));
}

interface Shape {
  model: string;
  tokens: string[];
  reasoning: string[];
  tool: ToolCall | undefined;
  realistic: boolean;
  reasoningGapMs: number | undefined;
}

interface BodyEvent {
  text: string;
  /** A content event (text, reasoning, a tool call's chunk): fault positions count these. */
  content: boolean;
  gapAfterMs?: number;
}

interface StreamEvents {
  /** Sent with the headers: the role chunk, message_start. */
  opening: string;
  body: BodyEvent[];
  /** The finish event(s), with usage. */
  finish: string;
  terminator: string;
}

const content = (text: string, gapAfterMs?: number): BodyEvent => ({ text, content: true, ...(gapAfterMs !== undefined ? { gapAfterMs } : {}) });
const structural = (text: string): BodyEvent => ({ text, content: false, gapAfterMs: 0 });
const CREATED = 1_760_000_000;

function openaiEvents(s: Shape, includeUsage: boolean, choices: 1 | 2, noSpaceDone: boolean): StreamEvents {
  const extra = s.realistic ? { created: CREATED, system_fingerprint: 'fp_b2c1d3e4f5', service_tier: 'default' } : {};
  const chunk = (list: object[], more: object = {}) =>
    `data: ${JSON.stringify({ id: s.realistic ? 'chatcmpl-CQ3d1Yb7xWq2' : 'c1', object: 'chat.completion.chunk', ...extra, model: s.model, choices: list.map((c) => (s.realistic ? { ...c, logprobs: null } : c)), ...(includeUsage && s.realistic ? { usage: null } : {}), ...more })}\n\n`;
  const choice = (index: number, delta: object, finish: string | null = null) => ({ index, delta, finish_reason: finish });
  const role = (index: number) => choice(index, s.realistic ? { role: 'assistant', content: '', refusal: null } : { role: 'assistant', content: '' });
  const text = (index: number, t: string) => chunk([choice(index, { content: t })]);
  const finishChunk = (index: number, reason: string) => chunk([choice(index, {}, reason)]);
  const usage = (output: number) =>
    includeUsage
      ? chunk([], { usage: { prompt_tokens: 11, completion_tokens: output, total_tokens: 11 + output, ...(s.realistic ? { prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 }, completion_tokens_details: { reasoning_tokens: s.reasoning.length, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 } } : {}) } })
      : '';
  const terminator = noSpaceDone ? 'data:[DONE]\n\n' : 'data: [DONE]\n\n';
  const reasoning = s.reasoning.map((r) => content(chunk([choice(0, s.realistic ? { content: null, reasoning_content: r } : { reasoning_content: r })]), s.reasoningGapMs));
  if (s.tool) {
    const id = s.tool.id ?? 'call_Xq3b7nR2kT9mPz4wLv8sYd1c';
    const preface = (s.tool.preface ?? '').split(/(?<= )/).filter(Boolean);
    // The call's first chunk carries the role, unless text came first (then the role chunk did).
    const opensMessage = preface.length === 0 ? (s.realistic ? { role: 'assistant', content: null } : { role: 'assistant' }) : {};
    const first = choice(0, { ...opensMessage, tool_calls: [{ index: 0, id, type: 'function', function: { name: s.tool.name, arguments: '' } }], ...(s.realistic ? { refusal: null } : {}) });
    const fragments = argumentFragments(s.tool).map((a) => content(chunk([choice(0, { tool_calls: [{ index: 0, function: { arguments: a } }] })])));
    return {
      opening: preface.length ? chunk([role(0)]) : '',
      body: [...reasoning, ...preface.map((p) => content(text(0, p))), content(chunk([first])), ...fragments],
      finish: finishChunk(0, 'tool_calls') + usage(s.reasoning.length + preface.length + fragments.length + 1),
      terminator,
    };
  }
  if (choices === 2) {
    const [a, b] = [TOKENS.slice(0, 30), TOKENS];
    const body: BodyEvent[] = [];
    for (let i = 0; i < b.length; i++) {
      if (i < a.length) body.push(content(text(0, a[i]!)));
      if (i === a.length - 1) body.push(structural(finishChunk(0, 'stop')));
      body.push(content(text(1, b[i]!)));
    }
    return { opening: chunk([role(0)]) + chunk([role(1)]), body, finish: finishChunk(1, 'stop') + usage(a.length + b.length), terminator };
  }
  return {
    opening: chunk([role(0)]),
    body: [...reasoning, ...s.tokens.map((t) => content(text(0, t)))],
    finish: finishChunk(0, 'stop') + usage(s.reasoning.length + s.tokens.length),
    terminator,
  };
}

function anthropicEvents(s: Shape): StreamEvents {
  const event = (type: string, data: object = {}) => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
  const usage = s.realistic ? { input_tokens: 11, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 1 } : { input_tokens: 11, output_tokens: 1 };
  const start = event('message_start', { message: { id: s.realistic ? 'msg_01XFDUDYJgAACzvnptvVoYEL' : 'msg_1', type: 'message', role: 'assistant', model: s.model, content: [], stop_reason: null, ...(s.realistic ? { stop_sequence: null } : {}), usage } });
  const ping = s.realistic ? event('ping') : '';
  const blockStart = (index: number, block: object) => event('content_block_start', { index, content_block: block });
  const blockStop = (index: number) => event('content_block_stop', { index });
  const delta = (index: number, d: object) => event('content_block_delta', { index, delta: d });
  const finish = (reason: string, output: number) => event('message_delta', { delta: { stop_reason: reason, stop_sequence: null }, usage: { output_tokens: output } });
  const terminator = event('message_stop');
  // Blocks in order: thinking (if any), text (the answer, or a tool call's preface), tool_use (if any).
  const blocks: { start: object; events: BodyEvent[]; opening?: string[] }[] = [];
  if (s.reasoning.length) {
    blocks.push({
      start: { type: 'thinking', thinking: '', signature: '' },
      events: [...s.reasoning.map((r) => content(delta(blocks.length, { type: 'thinking_delta', thinking: r }), s.reasoningGapMs)), structural(delta(blocks.length, { type: 'signature_delta', signature: 'EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds' }))],
    });
  }
  const words = s.tool ? (s.tool.preface ?? '').split(/(?<= )/).filter(Boolean) : s.tokens;
  if (words.length) blocks.push({ start: { type: 'text', text: '' }, events: words.map((w) => content(delta(blocks.length, { type: 'text_delta', text: w }))) });
  if (s.tool) {
    const index = blocks.length;
    blocks.push({
      start: { type: 'tool_use', id: s.tool.id ?? 'toolu_01A09q90qw90lq917835lq9', name: s.tool.name, input: {} },
      events: [structural(delta(index, { type: 'input_json_delta', partial_json: '' })), ...argumentFragments(s.tool).map((a) => content(delta(index, { type: 'input_json_delta', partial_json: a })))],
    });
  }
  const output = blocks.reduce((n, b) => n + b.events.filter((e) => e.content).length, 0);
  // The first block starts with the opening (as the minimal shape always did); each later one after the block before it.
  const body: BodyEvent[] = [];
  blocks.forEach((b, i) => {
    if (i > 0) body.push(structural(blockStop(i - 1)), structural(blockStart(i, b.start)));
    body.push(...b.events);
  });
  const last = blocks.length - 1;
  return {
    opening: start + (blocks[0] ? blockStart(0, blocks[0].start) : '') + ping,
    body,
    finish: (last >= 0 ? blockStop(last) : '') + finish(s.tool ? 'tool_use' : 'end_turn', output),
    terminator,
  };
}

function ollamaEvents(s: Shape): StreamEvents {
  const line = (message: object, more: object = {}) => JSON.stringify({ model: s.model, created_at: new Date().toISOString(), message: { role: 'assistant', content: '', ...message }, done: false, ...more }) + '\n';
  const body: BodyEvent[] = [...s.reasoning.map((r) => content(line({ thinking: r }), s.reasoningGapMs)), ...s.tokens.map((t) => content(line({ content: t })))];
  if (s.tool) body.splice(s.reasoning.length, s.tokens.length, content(line({ tool_calls: [{ function: { name: s.tool.name, arguments: JSON.parse(s.tool.arguments) as object } }] })));
  const output = body.length;
  return {
    opening: '',
    body,
    finish: line({}, { done: true, done_reason: 'stop', total_duration: 4_883_583_458, load_duration: 1_334_875, prompt_eval_count: 11, prompt_eval_duration: 342_546_000, eval_count: output, eval_duration: 4_535_599_000 }),
    terminator: '',
  };
}

function errorEvent(api: Api): string {
  if (api === 'anthropic') return `event: error\ndata: ${JSON.stringify({ type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } })}\n\n`;
  if (api === 'ollama') return `${JSON.stringify({ error: 'an error was encountered while running the model: unexpected EOF' })}\n`;
  return `data: ${JSON.stringify({ error: { message: 'The server had an error while processing your request. Sorry about that!', type: 'server_error', param: null, code: null } })}\n\n`;
}

/** One event that does not parse, in the API's framing (an Anthropic event keeps its `event:` line, so SDKs read it). */
function malformedEvent(api: Api, model: string): string {
  if (api === 'anthropic') return 'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"garbage\n\n';
  if (api === 'ollama') return `{"model":${JSON.stringify(model)},"created_at":"2025-10-09T12:00:00Z","message":{"role":"assistant","content":"garbage\n`;
  return 'data: {"choices": [{"delta": {"content": "garbage\n\n';
}

function plainAnswer(api: Api, model: string, tokens: string[], reasoning: string[], tool: ToolCall | undefined): string {
  const text = tokens.join('');
  const thinking = reasoning.join('');
  if (api === 'anthropic') {
    const blocks: object[] = [];
    if (thinking) blocks.push({ type: 'thinking', thinking, signature: 'EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds' });
    if (tool) {
      if (tool.preface) blocks.push({ type: 'text', text: tool.preface });
      blocks.push({ type: 'tool_use', id: tool.id ?? 'toolu_01A09q90qw90lq917835lq9', name: tool.name, input: JSON.parse(tool.arguments) as object });
    } else blocks.push({ type: 'text', text });
    return JSON.stringify({ id: 'msg_1', type: 'message', role: 'assistant', model, content: blocks, stop_reason: tool ? 'tool_use' : 'end_turn', usage: { input_tokens: 11, output_tokens: tokens.length } });
  }
  if (api === 'ollama') {
    const message = tool ? { role: 'assistant', content: '', tool_calls: [{ function: { name: tool.name, arguments: JSON.parse(tool.arguments) as object } }] } : { role: 'assistant', content: text, ...(thinking ? { thinking } : {}) };
    return JSON.stringify({ model, created_at: new Date().toISOString(), message, done: true, done_reason: 'stop', prompt_eval_count: 11, eval_count: tokens.length });
  }
  const message = tool
    ? { role: 'assistant', content: null, tool_calls: [{ id: tool.id ?? 'call_Xq3b7nR2kT9mPz4wLv8sYd1c', type: 'function', function: { name: tool.name, arguments: tool.arguments } }] }
    : { role: 'assistant', content: text, ...(thinking ? { reasoning_content: thinking } : {}) };
  return JSON.stringify({ id: 'c1', object: 'chat.completion', model, choices: [{ index: 0, message, finish_reason: tool ? 'tool_calls' : 'stop' }], usage: { prompt_tokens: 11, completion_tokens: tokens.length, total_tokens: 11 + tokens.length } });
}
