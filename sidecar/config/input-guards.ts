/**
 * An upstream's input guards, compiled from its policy's `guards`: a cap on
 * body bytes, a cap on estimated input tokens, and deny patterns. The deny
 * patterns are RE2 expressions (re2js: linear time, so no input can make a
 * search backtrack), joined into one alternation so that one pass over the
 * text says whether any matches; only then is each tried to name the guard.
 *
 * The text a request carries is every string in its JSON body, and the
 * property names of the JSON schemas in it (a tool's parameters), except
 * inline media: what a model reads, wherever the API puts it (messages,
 * system, prompt, tools, tool results, documents). Media is exempt only where
 * it is media both by place and by shape: a `data:<mime>;base64,` URL, or
 * base64 `data` in an image, audio or base64 source (Anthropic's base64
 * sources, OpenAI's input_audio, Gemini's inline_data) and Ollama's `images`.
 * A message that starts with "data:", or an Anthropic plain-text document
 * under `data`, is text.
 */
import { RE2JS } from 're2js';
import type { UpstreamSpec } from '../../api/index.js';

/** Deny patterns read at most this much text (about 250k tokens); a request carrying more is blocked. */
export const MAX_SCANNED_CHARS = 1 << 20;

/** A data URL carrying base64 media. */
const DATA_URL = /^data:[\w.+-]+\/[\w.+-]+(?:;[\w.+-]+=[\w.+-]+)*;base64,[A-Za-z0-9+/=\r\n]*$/;
/** Base64 and nothing else. */
const BASE64 = /^[A-Za-z0-9+/=_-]*$/;
/** Keys whose object's keys are names a model reads: a JSON schema's properties and definitions. */
const NAMED_KEYS = new Set(['properties', '$defs', 'definitions']);

/** Whether `value`, under `key` of `holder`, is inline media rather than text. */
function isMedia(value: string, key: string, holder: Record<string, unknown> | undefined): boolean {
  if (value.startsWith('data:')) return DATA_URL.test(value);
  if (!BASE64.test(value)) return false;
  if (key === 'images') return true; // Ollama's images: an array of base64
  if (key !== 'data' || !holder) return false;
  // Anthropic's {type: base64, media_type, data}, OpenAI's input_audio {data, format}, Gemini's inline_data {mime_type, data}.
  return holder.type === 'base64' || typeof holder.format === 'string' || typeof holder.mime_type === 'string' || typeof holder.mimeType === 'string';
}

export interface InputGuards {
  /** Whether any guard is on (otherwise the layer passes requests untouched). */
  readonly active: boolean;
  /** The guard a request body trips, or undefined. `body` null: too large to have been buffered. */
  check(body: Buffer | null): string | undefined;
}

/** The text a model reads in a parsed body, or undefined past `max` characters. */
export function requestText(json: unknown, max = MAX_SCANNED_CHARS): string | undefined {
  const parts: string[] = [];
  let length = 0;
  const add = (text: string): boolean => {
    length += text.length + 1;
    parts.push(text);
    return length <= max;
  };
  const visit = (value: unknown, key: string, holder: Record<string, unknown> | undefined): boolean => {
    if (typeof value === 'string') return isMedia(value, key, holder) || add(value);
    if (Array.isArray(value)) return value.every((item) => visit(item, key, undefined));
    if (typeof value !== 'object' || value === null) return true;
    const object = value as Record<string, unknown>;
    return Object.entries(object).every(([k, v]) => (!NAMED_KEYS.has(key) || add(k)) && visit(v, k, object));
  };
  return visit(json, '', undefined) ? parts.join('\n') : undefined;
}

class DenyPatterns {
  /** All patterns as one alternation: one pass (RE2's DFA) says whether any matches. */
  private readonly any: RE2JS;
  private readonly each: { name: string; pattern: RE2JS }[];

  constructor(deny: UpstreamSpec['guards']['deny']) {
    this.each = deny.map((d) => ({ name: d.name, pattern: RE2JS.compile(d.pattern, d.ignoreCase ? RE2JS.CASE_INSENSITIVE : 0) }));
    this.any = RE2JS.compile(deny.map((d) => `(?${d.ignoreCase ? 'i' : ''}:${d.pattern})`).join('|'));
  }

  /** The first pattern, in policy order, found in `text` (only a match pays for a second pass per pattern). */
  firstMatch(text: string): string | undefined {
    if (!this.any.test(text)) return undefined;
    return this.each.find((d) => d.pattern.test(text))?.name;
  }
}

export function compileInputGuards(spec: UpstreamSpec['guards']): InputGuards {
  const deny = spec.deny.length > 0 ? new DenyPatterns(spec.deny) : undefined;
  const active = spec.maxInputBytes > 0 || spec.maxInputTokens > 0 || deny !== undefined;
  return {
    active,
    check(body) {
      if (!active) return undefined;
      if (body === null) return 'unreadable-input';
      if (spec.maxInputBytes > 0 && body.length > spec.maxInputBytes) return 'max-input-bytes';
      if (spec.maxInputTokens === 0 && !deny) return undefined;
      let json: unknown;
      try {
        json = JSON.parse(body.toString('utf8'));
      } catch {
        return 'unreadable-input';
      }
      const text = requestText(json, deny ? MAX_SCANNED_CHARS : Infinity);
      if (text === undefined) return 'unreadable-input';
      if (spec.maxInputTokens > 0 && Buffer.byteLength(text) / 4 > spec.maxInputTokens) return 'max-input-tokens';
      return deny?.firstMatch(text);
    },
  };
}
