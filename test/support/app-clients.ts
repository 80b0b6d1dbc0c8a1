/**
 * The app's side: streams read as apps read them, through the official
 * SDKs (`openai`, `@anthropic-ai/sdk`, maxRetries 0) or, for Ollama's
 * native /api/chat, through fetch and an NDJSON reader that does what
 * ollama-js does (a line with `error` throws; a line that does not parse
 * throws). Each returns what the app saw, also when the SDK threw: the text
 * it had read until then, and the error. Nothing here retries or repairs.
 */
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';

export interface SeenToolCall {
  id: string;
  name: string;
  /** The arguments' JSON text as the app accumulated it. */
  arguments: string;
}

export interface Seen {
  /** Choice 0's text (OpenAI), the text blocks (Anthropic), message.content (Ollama). */
  text: string;
  /** reasoning_content (OpenAI-compatible), thinking blocks (Anthropic), message.thinking (Ollama). */
  reasoning: string;
  /** The model the last event named (OpenAI, Ollama), or message_start's (Anthropic). */
  model: string;
  /** finish_reason, stop_reason or done_reason, as last seen. */
  finish: string | null;
  usage: { input?: number; output?: number } | undefined;
  toolCalls: SeenToolCall[];
  /** OpenAI: each choice's text and finish_reason, by index. */
  choices: { text: string; finish: string | null }[];
  /** What the SDK (or the NDJSON reader) threw; undefined when the stream ended without an error. */
  error: unknown;
  /** Anthropic: message_stop was read; Ollama: a line with "done": true was read. OpenAI's SDK does not tell. */
  ended: boolean;
  ms: number;
}

const seen = (): Seen => ({ text: '', reasoning: '', model: '', finish: null, usage: undefined, toolCalls: [], choices: [], error: undefined, ended: false, ms: 0 });

/** An error that an Ollama stream reported in a line of its own (`{"error": "..."}`), as ollama-js throws it. */
export class OllamaStreamError extends Error {
  override name = 'OllamaStreamError';
}

/**
 * A clean error: one the API's own error event carried to the app (the SDK's APIError; an Ollama error line), not a
 * connection that broke under the app, an event it could not parse, or the app's own timeout.
 */
export const isCleanError = (e: unknown) =>
  (e instanceof OpenAI.APIError && !(e instanceof OpenAI.APIConnectionError)) || (e instanceof Anthropic.APIError && !(e instanceof Anthropic.APIConnectionError)) || e instanceof OllamaStreamError;

export const describeError = (e: unknown) => (e === undefined ? 'none' : e instanceof Error ? `${e.constructor.name}: ${e.message}` : String(e));

/** For assertion messages: what the app saw, briefly. */
export const show = (s: Seen) =>
  JSON.stringify({ text: s.text.length > 120 ? `${s.text.slice(0, 60)}…${s.text.slice(-60)}` : s.text, len: s.text.length, reasoningLen: s.reasoning.length, model: s.model, finish: s.finish, usage: s.usage, toolCalls: s.toolCalls, choices: s.choices.map((c) => ({ len: c.text.length, finish: c.finish })), error: describeError(s.error), ended: s.ended, ms: s.ms });

export interface OpenAIAsk {
  model?: string;
  includeUsage?: boolean;
  tools?: OpenAI.ChatCompletionTool[];
  n?: number;
  timeoutMs?: number;
  messages?: OpenAI.ChatCompletionMessageParam[];
}

export const WEATHER_TOOL: OpenAI.ChatCompletionTool = {
  type: 'function',
  function: { name: 'get_weather', description: 'The weather for a place', parameters: { type: 'object', properties: { location: { type: 'string' }, unit: { type: 'string' } }, required: ['location'] } },
};

export const ANTHROPIC_WEATHER_TOOL: Anthropic.Tool = {
  name: 'get_weather',
  description: 'The weather for a place',
  input_schema: { type: 'object', properties: { location: { type: 'string' }, unit: { type: 'string' } }, required: ['location'] },
};

const openaiClient = (baseURL: string, timeoutMs: number) => new OpenAI({ apiKey: 'sk-app', baseURL, maxRetries: 0, timeout: timeoutMs, logLevel: 'off' });

/** chat.completions.create({stream: true}), read chunk by chunk, accumulating deltas as apps do. */
export async function openaiStream(baseURL: string, ask: OpenAIAsk = {}): Promise<Seen> {
  const s = seen();
  const started = Date.now();
  const tools = new Map<number, SeenToolCall>();
  try {
    const stream = await openaiClient(baseURL, ask.timeoutMs ?? 60_000).chat.completions.create({
      model: ask.model ?? 'small-model',
      messages: ask.messages ?? [{ role: 'user', content: 'count to 60' }],
      stream: true,
      temperature: 0,
      ...(ask.includeUsage ? { stream_options: { include_usage: true } } : {}),
      ...(ask.tools ? { tools: ask.tools } : {}),
      ...(ask.n ? { n: ask.n } : {}),
    });
    for await (const chunk of stream) {
      s.model = chunk.model || s.model;
      if (chunk.usage) s.usage = { input: chunk.usage.prompt_tokens, output: chunk.usage.completion_tokens };
      for (const c of chunk.choices) {
        const choice = (s.choices[c.index] ??= { text: '', finish: null });
        choice.text += c.delta?.content ?? '';
        if (c.finish_reason) choice.finish = c.finish_reason;
        if (c.index !== 0) continue;
        s.text += c.delta?.content ?? '';
        s.reasoning += (c.delta as { reasoning_content?: string | null })?.reasoning_content ?? '';
        if (c.finish_reason) s.finish = c.finish_reason;
        for (const tc of c.delta?.tool_calls ?? []) {
          const call = tools.get(tc.index) ?? { id: '', name: '', arguments: '' };
          if (tc.id) call.id = tc.id;
          if (tc.function?.name) call.name = tc.function.name;
          call.arguments += tc.function?.arguments ?? '';
          tools.set(tc.index, call);
        }
      }
    }
  } catch (e) {
    s.error = e;
  }
  s.toolCalls = [...tools.entries()].sort(([a], [b]) => a - b).map(([, c]) => c);
  s.ms = Date.now() - started;
  return s;
}

/** chat.completions.stream(...).finalChatCompletion(): the SDK's own accumulation (it checks every choice's finish_reason and each tool call's name and arguments). */
export async function openaiFinal(baseURL: string, ask: OpenAIAsk = {}): Promise<Seen & { completion?: OpenAI.ChatCompletion }> {
  const s: Seen & { completion?: OpenAI.ChatCompletion } = seen();
  const started = Date.now();
  const raw = new Map<number, SeenToolCall>();
  try {
    const stream = openaiClient(baseURL, ask.timeoutMs ?? 60_000).chat.completions.stream({
      model: ask.model ?? 'small-model',
      messages: ask.messages ?? [{ role: 'user', content: 'What is the weather in Paris?' }],
      temperature: 0,
      ...(ask.includeUsage ? { stream_options: { include_usage: true } } : {}),
      ...(ask.tools ? { tools: ask.tools } : {}),
    });
    stream.on('chunk', (chunk) => {
      for (const tc of chunk.choices[0]?.delta?.tool_calls ?? []) {
        const call = raw.get(tc.index) ?? { id: '', name: '', arguments: '' };
        if (tc.id) call.id = tc.id;
        if (tc.function?.name) call.name = tc.function.name;
        call.arguments += tc.function?.arguments ?? '';
        raw.set(tc.index, call);
      }
      s.text += chunk.choices[0]?.delta?.content ?? '';
    });
    const completion = await stream.finalChatCompletion();
    s.completion = completion;
    const message = completion.choices[0]?.message;
    s.model = completion.model;
    s.finish = completion.choices[0]?.finish_reason ?? null;
    s.text = message?.content ?? '';
    s.toolCalls = (message?.tool_calls ?? []).map((c) => (c.type === 'function' ? { id: c.id, name: c.function.name, arguments: c.function.arguments } : { id: c.id, name: '', arguments: '' }));
    if (completion.usage) s.usage = { input: completion.usage.prompt_tokens, output: completion.usage.completion_tokens };
  } catch (e) {
    s.error = e;
    s.toolCalls = [...raw.values()];
  }
  s.ms = Date.now() - started;
  return s;
}

export interface AnthropicAsk {
  model?: string;
  tools?: Anthropic.Tool[];
  thinking?: boolean;
  timeoutMs?: number;
  messages?: Anthropic.MessageParam[];
}

const anthropicClient = (baseURL: string, timeoutMs: number) => new Anthropic({ apiKey: 'sk-ant-app', baseURL, maxRetries: 0, timeout: timeoutMs, logLevel: 'off' });
const anthropicParams = (ask: AnthropicAsk) => ({
  model: ask.model ?? 'claude-small',
  max_tokens: ask.thinking ? 4096 : 1024,
  messages: ask.messages ?? [{ role: 'user' as const, content: 'count to 60' }],
  ...(ask.thinking ? { thinking: { type: 'enabled' as const, budget_tokens: 2048 } } : { temperature: 0 }),
  ...(ask.tools ? { tools: ask.tools } : {}),
});

/** messages.stream(...).finalMessage(), with the text events as they came (for what was read before an error). */
export async function anthropicStream(baseURL: string, ask: AnthropicAsk = {}): Promise<Seen & { message?: Anthropic.Message }> {
  const s: Seen & { message?: Anthropic.Message } = seen();
  const started = Date.now();
  const partial = new Map<number, SeenToolCall>();
  try {
    const stream = anthropicClient(baseURL, ask.timeoutMs ?? 60_000).messages.stream(anthropicParams(ask));
    stream.on('streamEvent', (event) => {
      if (event.type === 'message_start') s.model = event.message.model;
      if (event.type === 'message_stop') s.ended = true;
      if (event.type === 'content_block_start' && event.content_block.type === 'tool_use') partial.set(event.index, { id: event.content_block.id, name: event.content_block.name, arguments: '' });
      if (event.type === 'content_block_delta') {
        if (event.delta.type === 'text_delta') s.text += event.delta.text;
        if (event.delta.type === 'thinking_delta') s.reasoning += event.delta.thinking;
        if (event.delta.type === 'input_json_delta') {
          const call = partial.get(event.index);
          if (call) call.arguments += event.delta.partial_json;
        }
      }
    });
    const message = await stream.finalMessage();
    s.message = message;
    s.model = message.model;
    s.finish = message.stop_reason;
    s.usage = { input: message.usage.input_tokens, output: message.usage.output_tokens };
    s.text = message.content.map((b) => (b.type === 'text' ? b.text : '')).join('');
    s.reasoning = message.content.map((b) => (b.type === 'thinking' ? b.thinking : '')).join('');
    s.toolCalls = message.content.flatMap((b) => (b.type === 'tool_use' ? [{ id: b.id, name: b.name, arguments: JSON.stringify(b.input) }] : []));
  } catch (e) {
    s.error = e;
    s.toolCalls = [...partial.values()];
  }
  s.ms = Date.now() - started;
  return s;
}

/** messages.create({stream: true}), read event by event. */
export async function anthropicCreate(baseURL: string, ask: AnthropicAsk = {}): Promise<Seen> {
  const s = seen();
  const started = Date.now();
  try {
    const stream = await anthropicClient(baseURL, ask.timeoutMs ?? 60_000).messages.create({ ...anthropicParams(ask), stream: true });
    for await (const event of stream) {
      if (event.type === 'message_start') s.model = event.message.model;
      if (event.type === 'content_block_delta' && event.delta.type === 'text_delta') s.text += event.delta.text;
      if (event.type === 'content_block_delta' && event.delta.type === 'thinking_delta') s.reasoning += event.delta.thinking;
      if (event.type === 'message_delta') {
        s.finish = event.delta.stop_reason;
        s.usage = { output: event.usage.output_tokens };
      }
      if (event.type === 'message_stop') s.ended = true;
    }
  } catch (e) {
    s.error = e;
  }
  s.ms = Date.now() - started;
  return s;
}

export interface OllamaAsk {
  model?: string;
  timeoutMs?: number;
  messages?: { role: string; content: string }[];
  tools?: object[];
}

/** POST /api/chat (streaming, Ollama's default) and read its NDJSON as ollama-js does: each line parsed, a line with `error` throws. */
export async function ollamaChat(baseURL: string, ask: OllamaAsk = {}): Promise<Seen> {
  const s = seen();
  const started = Date.now();
  const tools: SeenToolCall[] = [];
  try {
    const res = await fetch(`${baseURL}/api/chat`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: ask.model ?? 'small-model', messages: ask.messages ?? [{ role: 'user', content: 'count to 60' }], options: { temperature: 0 }, ...(ask.tools ? { tools: ask.tools } : {}) }),
      signal: AbortSignal.timeout(ask.timeoutMs ?? 60_000),
    });
    if (!res.ok) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
    const decoder = new TextDecoder();
    let pending = '';
    const line = (text: string) => {
      if (text.trim() === '') return;
      const json = JSON.parse(text) as Record<string, any>; // throws on a line that does not parse, as ollama-js does
      if ('error' in json) throw new OllamaStreamError(String(json.error));
      s.model = json.model ?? s.model;
      s.text += json.message?.content ?? '';
      s.reasoning += json.message?.thinking ?? '';
      for (const c of json.message?.tool_calls ?? []) tools.push({ id: c.id ?? '', name: c.function?.name ?? '', arguments: JSON.stringify(c.function?.arguments ?? null) });
      if (json.done === true) {
        s.ended = true;
        s.finish = json.done_reason ?? null;
        s.usage = { input: json.prompt_eval_count, output: json.eval_count };
      }
    };
    for await (const bytes of res.body as unknown as AsyncIterable<Uint8Array>) {
      pending += decoder.decode(bytes, { stream: true });
      let nl: number;
      while ((nl = pending.indexOf('\n')) >= 0) {
        line(pending.slice(0, nl));
        pending = pending.slice(nl + 1);
      }
    }
    line(pending);
  } catch (e) {
    s.error = e;
  }
  s.toolCalls = tools;
  s.ms = Date.now() - started;
  return s;
}
