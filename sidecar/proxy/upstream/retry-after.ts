/**
 * How long an upstream asks us to wait: `retry-after-ms`, `Retry-After`
 * (seconds or an HTTP date), OpenAI's `x-ratelimit-reset-*` ("6m0s", "20ms")
 * and Anthropic's `anthropic-ratelimit-*-reset` (RFC 3339). An explicit
 * Retry-After wins; reset headers count only for the limit that is spent
 * (its `remaining` header is 0), since providers send them on every answer.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { firstHeader as header } from '../../../lib/index.js';

const GO_DURATION = /([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)/g;
const MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

function goDuration(text: string): number | undefined {
  if (text.length > 32) return undefined; // checked before the regex runs: no upstream makes it scan a long header
  let total = 0;
  let matched = false;
  for (const m of text.matchAll(GO_DURATION)) {
    total += Number(m[1]) * MS[m[2]!]!;
    matched = true;
  }
  return matched ? total : undefined;
}

function explicitAsk(headers: IncomingHttpHeaders, nowEpochMs: number): number | undefined {
  const ms = header(headers, 'retry-after-ms') ?? header(headers, 'x-ms-retry-after-ms');
  if (ms !== undefined && Number.isFinite(Number(ms))) return Number(ms);
  const ra = header(headers, 'retry-after');
  if (ra === undefined) return undefined;
  if (/^\s*[0-9]+(\.[0-9]+)?\s*$/.test(ra)) return Number(ra) * 1000;
  const at = Date.parse(ra);
  return Number.isNaN(at) ? undefined : at - nowEpochMs;
}

const RESET_HEADERS: { reset: string; remaining: string; parse: (v: string, now: number) => number | undefined }[] = [
  { reset: 'x-ratelimit-reset-requests', remaining: 'x-ratelimit-remaining-requests', parse: (v) => goDuration(v) },
  { reset: 'x-ratelimit-reset-tokens', remaining: 'x-ratelimit-remaining-tokens', parse: (v) => goDuration(v) },
  ...['requests', 'tokens', 'input-tokens', 'output-tokens'].map((kind) => ({
    reset: `anthropic-ratelimit-${kind}-reset`,
    remaining: `anthropic-ratelimit-${kind}-remaining`,
    parse: (v: string, now: number) => {
      const at = Date.parse(v);
      return Number.isNaN(at) ? undefined : at - now;
    },
  })),
];

/** Milliseconds to wait, or undefined when the answer asks for no wait. `nowEpochMs` turns dates into delays. */
export function retryAfterMs(headers: IncomingHttpHeaders, nowEpochMs: number): number | undefined {
  const explicit = explicitAsk(headers, nowEpochMs);
  if (explicit !== undefined) return Math.max(0, explicit);
  let longest: number | undefined;
  for (const h of RESET_HEADERS) {
    const value = header(headers, h.reset);
    if (value === undefined || header(headers, h.remaining) !== '0') continue;
    const ms = h.parse(value, nowEpochMs);
    if (ms !== undefined) longest = Math.max(longest ?? 0, ms);
  }
  return longest === undefined ? undefined : Math.max(0, longest);
}
