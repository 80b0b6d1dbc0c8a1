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
 *
 * Deny patterns read that text as a model would, so that what a model reads
 * as a phrase matches as one: the strings of one array (content parts, and
 * the `text` of parts) are joined with nothing, as a model reads them, and
 * every other string is its own line; each line is then normalised (no
 * invisible characters, each run of whitespace one space, NFKC), and ASCII
 * hidden in Unicode tag characters is read as a line of its own.
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

/**
 * Characters a reader does not see: Unicode's default-ignorable code points
 * (zero-width space and joiners, word joiner, soft hyphen, variation
 * selectors, bidi controls, tags, Hangul fillers) and the other format
 * characters (U+FEFF, Arabic and interlinear marks). Removed, not made
 * spaces, since they are put inside words.
 */
const INVISIBLE = /[\p{Default_Ignorable_Code_Point}\p{Cf}]+/gu;
/**
 * A run of whitespace (NBSP, U+2000–U+200A, U+3000, tabs, newlines, …) or
 * control characters, one gap to a reader, unless it is already one space:
 * not matching those (most of prose's gaps) makes this about 3 times faster.
 */
const GAP = /[\p{White_Space}\p{Cc}]{2,}|[^\P{White_Space} ]|\p{Cc}/gu;
/** Text that normalising would change: anything but printable ASCII, or two spaces. */
const NOT_PLAIN = /[^\x20-\x7e]| {2}/;
/** Unicode tag characters shadowing printable ASCII (U+E0020–U+E007E): invisible, but some models read them as that ASCII. */
const TAG = /[\u{E0020}-\u{E007E}]/u;
const NOT_TAG = /[^\u{E0020}-\u{E007E}]+/gu;

/**
 * Text as deny patterns see it: invisible characters removed, then NFKC
 * (full-width letters and digits, ligatures and compatibility spaces become
 * their plain forms), then each run of whitespace one space. In that order
 * because NFKC never makes an invisible character but does make spaces (U+00A8
 * is a space and a diaeresis), and because a removed joiner may sit between a
 * letter and the accent NFKC composes with it. Idempotent; linear time.
 */
export function normalizeText(text: string): string {
  if (!NOT_PLAIN.test(text)) return text;
  return text.replace(INVISIBLE, '').normalize('NFKC').replace(GAP, ' ');
}

/** The ASCII a text hides in tag characters, in order. */
function hiddenAscii(text: string): string {
  return [...text.replace(NOT_TAG, '')].map((tag) => String.fromCharCode(tag.codePointAt(0)! - 0xe0000)).join('');
}

/**
 * The strings a model reads in a parsed body, as segments: a field's string
 * is one, and the strings of one array (its string items and the `text` of
 * its parts) are one, joined with nothing, where the array's first is.
 * Undefined past `max` characters, counted as each string is found, so that
 * no more than that is ever joined or normalised.
 */
export function textSegments(json: unknown, max = MAX_SCANNED_CHARS): string[] | undefined {
  const segments: string[] = [];
  let length = 0;
  const count = (chars: number): boolean => (length += chars) <= max;
  const add = (text: string): boolean => {
    segments.push(text);
    return count(text.length + 1);
  };
  const visitObject = (object: Record<string, unknown>, key: string, taken?: string): boolean =>
    Object.entries(object).every(([k, v]) => (!NAMED_KEYS.has(key) || add(k)) && (k === taken || visit(v, k, object)));
  const visitArray = (items: unknown[], key: string): boolean => {
    const run: string[] = [];
    let slot = -1;
    const join = (text: string): boolean => {
      if (slot < 0) {
        // Keep the run's place among the segments; it is filled once the array is read.
        slot = segments.length;
        segments.push('');
        length += 1;
      }
      run.push(text);
      return count(text.length);
    };
    for (const item of items) {
      const read =
        typeof item === 'string'
          ? isMedia(item, key, undefined) || join(item)
          : isPart(item)
            ? (isMedia(item.text, 'text', item) || join(item.text)) && visitObject(item, key, 'text')
            : visit(item, key, undefined);
      if (!read) return false;
    }
    if (slot >= 0) segments[slot] = run.join('');
    return true;
  };
  const visit = (value: unknown, key: string, holder: Record<string, unknown> | undefined): boolean => {
    if (typeof value === 'string') return isMedia(value, key, holder) || add(value);
    if (Array.isArray(value)) return visitArray(value, key);
    if (typeof value !== 'object' || value === null) return true;
    return visitObject(value as Record<string, unknown>, key);
  };
  return visit(json, '', undefined) ? segments : undefined;
}

/** An object with a string `text`: a content part (OpenAI, Anthropic, Gemini, Responses). */
function isPart(value: unknown): value is Record<string, unknown> & { text: string } {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && typeof (value as { text?: unknown }).text === 'string';
}

/**
 * What deny patterns search: each segment normalised, one a line, and after
 * it the ASCII it hides in tag characters, if any. Undefined past `max`
 * characters: NFKC can make one character many (U+FDFA is 18), so the cap is
 * checked again after normalising.
 */
export function scannedText(segments: readonly string[], max = MAX_SCANNED_CHARS): string | undefined {
  const lines: string[] = [];
  let length = 0;
  for (const segment of segments) {
    const line = normalizeText(segment);
    lines.push(line);
    length += line.length + 1;
    if (TAG.test(segment)) {
      const hidden = normalizeText(hiddenAscii(segment));
      lines.push(hidden);
      length += hidden.length + 1;
    }
    if (length > max) return undefined;
  }
  return lines.join('\n');
}

/** The text deny patterns search in a parsed body (see `scannedText`), or undefined past `max` characters. */
export function requestText(json: unknown, max = MAX_SCANNED_CHARS): string | undefined {
  const segments = textSegments(json, max);
  return segments && scannedText(segments, max);
}

/** The UTF-8 bytes of the segments, one a line. */
function utf8Length(segments: readonly string[]): number {
  return segments.reduce((bytes, segment) => bytes + Buffer.byteLength(segment) + 1, -1);
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
      const segments = textSegments(json, deny ? MAX_SCANNED_CHARS : Infinity);
      if (segments === undefined) return 'unreadable-input';
      // Estimated from the raw text, not the normalised: a model is sent (and bills) every invisible character.
      if (spec.maxInputTokens > 0 && utf8Length(segments) / 4 > spec.maxInputTokens) return 'max-input-tokens';
      if (!deny) return undefined;
      const text = scannedText(segments);
      return text === undefined ? 'unreadable-input' : deny.firstMatch(text);
    },
  };
}
