/** Pieces more than one dialect uses. */
import { randomUUID } from 'node:crypto';
import { classifyStreamError } from '../classify.js';
import type { Dialect, EventFailure, Recogniser, StreamFraming } from './types.js';

/** The last number a global pattern captures in `text`, or `value` when it captures none. */
function lastNumber(pattern: RegExp, text: string, value: number): number {
  pattern.lastIndex = 0;
  for (let m = pattern.exec(text); m; m = pattern.exec(text)) value = Number(m[1]);
  return value;
}

/** What `parseJson` gives for a text that is not JSON. */
const MALFORMED = Symbol('malformed');

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return MALFORMED;
  }
}

function asObject(json: unknown): Record<string, any> | undefined {
  return typeof json === 'object' && json !== null ? (json as Record<string, any>) : undefined;
}

/** A JSON object (a plain answer), or undefined when the text is not one. */
export function parseObject(text: string): Record<string, any> | undefined {
  return asObject(parseJson(text));
}

/** Data longer than this is parsed each time it is read, not kept. */
const KEPT_EVENT_CHARS = 64 * 1024;
let lastEvent: { data: string; json: unknown } | undefined;

/**
 * A stream event's data as JSON (MALFORMED when it is not JSON), to read only: never change what it returns.
 * The last event parsed is kept, because the relay's check and recovery's reading of its text read the
 * same event one after the other, and an event is parsed once, not once per reader.
 */
function parseEventData(data: string): unknown {
  if (lastEvent?.data === data) return lastEvent.json;
  const json = parseJson(data);
  lastEvent = data.length <= KEPT_EVENT_CHARS ? { data, json } : undefined;
  return json;
}

/** A stream event's data as a JSON object to read, or undefined when it is not one. */
export function parseEventObject(data: string): Record<string, any> | undefined {
  return asObject(parseEventData(data));
}

/**
 * The event check of an API whose stream events are JSON: an event that is not JSON is invalid-response
 * (so no garbage reaches the app as a success); `errorOf` finds an in-stream error, classified by its text.
 */
export function jsonEventFailure(errorOf: (event: string, json: any) => unknown, recognisers: readonly Recogniser[]): (event: string, data: string) => EventFailure | undefined {
  return (event, data) => {
    if (data === '[DONE]' || data.trim() === '') return undefined;
    const json = parseEventData(data);
    if (json === MALFORMED) return { failure: 'invalid-response', detail: `a malformed event: ${JSON.stringify(data.slice(0, 100))}` };
    const object = asObject(json);
    const error = object && errorOf(event, object);
    if (error === undefined || error === null) return undefined;
    const text = typeof error === 'string' ? error : JSON.stringify(error);
    return { failure: classifyStreamError(text, recognisers), detail: `an error event: ${text.slice(0, 300)}` };
  };
}

/** The last count any of `fields` holds, at the top of a parsed answer or in its `usage` object; 0 when none does. */
function countIn(json: Record<string, any>, fields: string[]): number {
  let value = 0;
  for (const holder of [json, asObject(json.usage)]) {
    if (!holder) continue;
    for (const field of fields) {
      const n: unknown = holder[field];
      if (typeof n === 'number' && Number.isSafeInteger(n) && n >= 0) value = n;
    }
  }
  return value;
}

/**
 * The usage readers for the given input and output field names: `usage` finds the last count in a text (a
 * stream's events, piece by piece), `answerUsage` reads a parsed answer, whose JSON the attempt parsed once already.
 */
export function usageReaders(inputFields: string[], outputFields: string[]): Pick<Dialect, 'usage' | 'answerUsage'> {
  const input = new RegExp(`"(?:${inputFields.join('|')})"\\s*:\\s*([0-9]{1,12})`, 'g');
  const output = new RegExp(`"(?:${outputFields.join('|')})"\\s*:\\s*([0-9]{1,12})`, 'g');
  const either = (i: number, o: number) => (i || o ? { input: i, output: o } : undefined);
  return {
    usage: (text, before) => either(lastNumber(input, text, before?.input ?? 0), lastNumber(output, text, before?.output ?? 0)),
    answerUsage: (json) => either(countIn(json, inputFields), countIn(json, outputFields)),
  };
}

/** The error line that ends an NDJSON stream, in any family (Ollama's shape). */
export function ndjsonError(code: string, message: string): string {
  return JSON.stringify({ error: `${code}: ${message}`, done: true }) + '\n';
}

/** For dialects whose SSE error event is `data: <errorBody>`. */
export function dataErrorEvent(framing: StreamFraming, code: string, message: string, body: string): string {
  return framing === 'ndjson' ? ndjsonError(code, message) : `data: ${body}\n\n`;
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

/** Clamps a numeric cap to `max` (a missing one becomes `max`). */
export function clamp(value: unknown, max: number): unknown {
  if (value === undefined) return max;
  return typeof value === 'number' ? Math.min(value, max) : value;
}

/** Overload texts that servers of every family use. */
export const OVERLOADED: Recogniser = { class: 'overloaded', pattern: /overloaded_error|"overloaded"|server is overloaded/i, source: 'Anthropic, TGI and others' };
