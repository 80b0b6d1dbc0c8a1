/**
 * An upstream's input guards, compiled from its policy's `guards`: a cap on
 * body bytes, a cap on estimated input tokens, and deny patterns. The deny
 * patterns are RE2 expressions (re2js: linear time, so no input can make a
 * search backtrack), joined into one alternation so that one pass over the
 * text says whether any matches; only then is each tried to name the guard.
 *
 * The text a request carries is every string in its JSON body except inline
 * media (data: URLs and base64 `data`/`images` fields): what a model reads,
 * wherever the API puts it (messages, system, prompt, tools, tool results).
 */
import { RE2JS } from 're2js';
import type { UpstreamSpec } from '../../api/index.js';

/** Deny patterns read at most this much text (about 250k tokens); a request carrying more is blocked. */
export const MAX_SCANNED_CHARS = 1 << 20;
const MEDIA_KEYS = new Set(['data', 'images']);

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
  const visit = (value: unknown, key: string): boolean => {
    if (typeof value === 'string') {
      if (MEDIA_KEYS.has(key) || value.startsWith('data:')) return true;
      length += value.length + 1;
      parts.push(value);
      return length <= max;
    }
    if (Array.isArray(value)) return value.every((item) => visit(item, key));
    if (typeof value === 'object' && value !== null) return Object.entries(value).every(([k, v]) => visit(v, k));
    return true;
  };
  return visit(json, '') ? parts.join('\n') : undefined;
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
