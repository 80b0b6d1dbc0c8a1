/**
 * What an attempt's outcome says of the provider's load, for the endpoint's
 * adaptive limit (../../resilience/adaptive-limit.ts): refused (429, or 503
 * and 529 as overloaded, whatever the dialect recognised as one) with how
 * long it asks to wait; served, with a stream's time to first content event
 * and whether a rate-limit quota is close to spent (OpenAI's
 * `x-ratelimit-remaining-*` against `x-ratelimit-limit-*`, Anthropic's
 * `anthropic-ratelimit-*-remaining` against `-limit`); or nothing (a
 * timeout, a reset, a cancellation: the breaker's business, not capacity's).
 */
import type { IncomingHttpHeaders } from 'node:http';
import { firstHeader } from '../../../lib/index.js';
import type { Outcome } from '../handler.js';
import { retryAfterMs } from './retry-after.js';

export type ProviderLoad =
  | { kind: 'refused'; retryAfterMs?: number }
  | { kind: 'served'; ttftMs?: number; quotaLow: boolean };

/** A quota with less than this share left holds the limit's growth. */
const LOW_QUOTA = 0.05;

const QUOTAS: readonly (readonly [remaining: string, limit: string])[] = [
  ['x-ratelimit-remaining-requests', 'x-ratelimit-limit-requests'],
  ['x-ratelimit-remaining-tokens', 'x-ratelimit-limit-tokens'],
  ...['requests', 'tokens', 'input-tokens', 'output-tokens'].map((kind) => [`anthropic-ratelimit-${kind}-remaining`, `anthropic-ratelimit-${kind}-limit`] as const),
];

/** Whether an answer's rate-limit headers say a quota has less than 5% left. */
export function quotaLow(headers: IncomingHttpHeaders): boolean {
  for (const [remaining, limit] of QUOTAS) {
    const left = headers[remaining];
    if (left === undefined) continue;
    const of = Number(firstHeader(headers, limit));
    if (of > 0 && Number(firstHeader(headers, remaining)) < LOW_QUOTA * of) return true;
  }
  return false;
}

/** What `outcome` says of the provider's load; `nowEpochMs` reads a Retry-After given as a date. */
export function providerLoad(outcome: Outcome, nowEpochMs: number): ProviderLoad | undefined {
  switch (outcome.kind) {
    case 'stream':
      return { kind: 'served', ttftMs: outcome.timeToFirstDataMs, quotaLow: quotaLow(outcome.headers) };
    case 'answer':
      if (outcome.failure === 'rate-limited' || outcome.failure === 'overloaded') return { kind: 'refused', retryAfterMs: retryAfterMs(outcome.headers, nowEpochMs) };
      return outcome.status < 400 ? { kind: 'served', quotaLow: quotaLow(outcome.headers) } : undefined;
    case 'local':
      return outcome.failure === 'rate-limited' || outcome.failure === 'overloaded' ? { kind: 'refused', retryAfterMs: outcome.retryAfterMs } : undefined;
    default:
      return undefined;
  }
}
