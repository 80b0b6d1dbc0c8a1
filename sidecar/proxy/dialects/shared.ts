/** Pieces more than one dialect uses. */
import { randomUUID } from 'node:crypto';
import { classifyStreamError } from './classify.js';
import type { Content, Dialect, EventReading, Recogniser, RequestFields, TokenUsage } from './types.js';

/** What `parseJson` gives for a text that is not JSON. */
export const MALFORMED = Symbol('malformed');

export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return MALFORMED;
  }
}

export function asObject(json: unknown): Record<string, any> | undefined {
  return typeof json === 'object' && json !== null ? (json as Record<string, any>) : undefined;
}

/** A JSON object (a plain answer), or undefined when the text is not one. */
export function parseObject(text: string): Record<string, any> | undefined {
  return asObject(parseJson(text));
}

/** The reading of an event that is not the JSON this API sends: it ends the stream as invalid-response, so no garbage reaches the app as a success. */
export function malformed(data: string): EventReading {
  return { failure: { failure: 'invalid-response', detail: `a malformed event: ${JSON.stringify(data.slice(0, 100))}` } };
}

/** The reading of an in-stream error event, classified by its text. */
export function errorReading(error: unknown, recognisers: readonly Recogniser[]): EventReading {
  let text: string;
  try {
    text = typeof error === 'string' ? error : JSON.stringify(error);
  } catch {
    text = 'an error too deeply nested to read';
  }
  return { failure: { failure: classifyStreamError(text, recognisers), detail: `an error event: ${text.slice(0, 300)}` } };
}

/** The most tokens one report may count: past it, a report is no count (an upstream cannot spend a budget with one number). */
const MAX_REPORTED_TOKENS = 100_000_000;

/** A token count as an API reports it, or undefined when the field holds none. */
export function count(n: unknown): number | undefined {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0 && n <= MAX_REPORTED_TOKENS ? n : undefined;
}

/** The usage `input` and `output` counts say, or undefined when neither is there. */
export function usageOf(input: unknown, output: unknown): Partial<TokenUsage> | undefined {
  const i = count(input);
  const o = count(output);
  if (i === undefined && o === undefined) return undefined;
  const usage: Partial<TokenUsage> = {};
  if (i !== undefined) usage.input = i;
  if (o !== undefined) usage.output = o;
  return usage;
}

/** The only choice of a one-choice stream. */
export const FIRST_CHOICE: readonly number[] = [0];

/**
 * Collects an event's content pieces, in order, as a dialect reads them; for a rewrite
 * (Dialect.withContent), also how to carry other text (or none) in each piece's place.
 */
export class ContentCollector {
  readonly content: Content[] = [];
  private readonly setters: ((text: string | undefined) => void)[] | undefined;

  constructor(forRewrite: boolean) {
    this.setters = forRewrite ? [] : undefined;
  }

  /** A string field of `holder` as a piece of `channel`, when it holds text; `unset` leaves the piece out (default: the field goes). */
  field(holder: Record<string, any>, field: string, channel: string, unset?: () => void): void {
    const text: unknown = holder[field];
    if (typeof text !== 'string' || text === '') return;
    this.content.push({ channel, text });
    this.setters?.push((v) => (v !== undefined ? (holder[field] = v) : unset ? unset() : delete holder[field]));
  }

  /** A piece whose text stands for a value (a whole tool call's JSON): `set` carries a text in its place. */
  piece(channel: string, text: string, set: (text: string | undefined) => void): void {
    this.content.push({ channel, text });
    this.setters?.push(set);
  }

  /** Gives `reading` the pieces collected, if any. */
  into(reading: EventReading): EventReading {
    if (this.content.length > 0) reading.content = this.content;
    return reading;
  }

  /** Sets each piece to what `keep` says for it (see Dialect.withContent). */
  keep(keep: readonly (string | undefined)[]): void {
    this.setters?.forEach((set, i) => set(keep[i]));
  }
}

/** A position an upstream's event names (a block's, an output item's): a whole number, else 0, so no upstream string reaches a channel or mark. */
export const position = (n: unknown): number => (typeof n === 'number' && Number.isSafeInteger(n) && n >= 0 ? n : 0);

/** A kind an upstream's event names (a block's or a delta's type), bounded: it goes into a channel's name. */
export const kindOf = (v: unknown): string => String(v).slice(0, 64);

/** `prefix` + `name`, without making a string when there is no prefix. */
export const channel = (prefix: string, name: string) => (prefix === '' ? name : prefix + name);

/** The last count any of `fields` holds, at the top of a parsed answer or in its `usage` object; 0 when none does. */
function countIn(json: Record<string, any>, fields: string[]): number {
  let value = 0;
  for (const holder of [json, asObject(json.usage)]) {
    if (!holder) continue;
    for (const field of fields) value = count(holder[field]) ?? value;
  }
  return value;
}

/** The usage reader of a parsed plain answer, for the given input and output field names. */
export function answerUsageReader(inputFields: string[], outputFields: string[]): Dialect['answerUsage'] {
  return (json) => {
    const input = countIn(json, inputFields);
    const output = countIn(json, outputFields);
    return input || output ? { input, output } : undefined;
  };
}

/** An id for an answer the sidecar composes (never one that looks like a provider's or the mock's). */
export function composedId(prefix: string): string {
  return `${prefix}breakwater-${randomUUID().replaceAll('-', '').slice(0, 20)}`;
}

/** A default message for an upstream error status. */
export function statusMessage(status: number): string {
  if (status === 429) return 'Rate limit reached for requests';
  return status >= 500 ? 'The server had an error while processing your request.' : 'Invalid request';
}

/**
 * Puts `text` at the end of a chat's assistant turn: after the app's own trailing assistant message (an
 * app may prefill too), or as a new one. False when the body has no messages.
 */
export function prefillAssistant(json: Record<string, any>, text: string): boolean {
  const messages: unknown = json.messages;
  if (!Array.isArray(messages)) return false;
  const last = messages.at(-1) as Record<string, any> | undefined;
  if (last?.role === 'assistant' && typeof last.content === 'string') last.content += text;
  else if (last?.role === 'assistant' && Array.isArray(last.content)) last.content.push({ type: 'text', text });
  else messages.push({ role: 'assistant', content: text });
  return true;
}

/** A positive count, else undefined. */
export const positive = (value: unknown): number | undefined => (typeof value === 'number' && value > 0 ? value : undefined);

/** The longest model name the sidecar keeps (breaker keys, headers, logs): longer ones are cut here, once. */
const MAX_MODEL_CHARS = 256;

/** The model and stream flag where every API family puts them: at the top of the body. */
export function topLevelFields(json: Record<string, any>): Pick<RequestFields, 'model' | 'stream'> {
  return {
    model: typeof json.model === 'string' ? json.model.slice(0, MAX_MODEL_CHARS) : undefined,
    stream: typeof json.stream === 'boolean' ? json.stream : undefined,
  };
}

export const setTopLevelModel = (json: Record<string, any>, model: string) => {
  json.model = model;
};

/** Clamps a numeric cap to `max` (a missing one becomes `max`). */
export function clamp(value: unknown, max: number): unknown {
  if (value === undefined) return max;
  return typeof value === 'number' ? Math.min(value, max) : value;
}

/** Overload texts that servers of every family use. */
export const OVERLOADED: Recogniser = { class: 'overloaded', pattern: /overloaded_error|"overloaded"|server is overloaded/i, source: 'Anthropic, TGI and others' };
