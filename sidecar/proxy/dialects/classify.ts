/**
 * Sorts an upstream answer into the contract's failure classes: by status,
 * then by the dialect's recognisers for the body (each API's real error
 * text lives in its dialect module); transport errors by their Node code.
 */
import type { FailureClass } from '../../../api/index.js';
import type { Recogniser } from './types.js';

function recognise(recognisers: readonly Recogniser[], body: string): FailureClass | undefined {
  for (const r of recognisers) if (r.pattern.test(body)) return r.class;
  return undefined;
}

/** The failure class of an HTTP answer, or undefined for a success. */
export function classifyStatus(status: number, body: string, recognisers: readonly Recogniser[]): FailureClass | undefined {
  if (status < 400) return undefined;
  if (status === 429) return 'rate-limited';
  if (status === 503 || status === 529) return 'overloaded';
  const recognised = recognise(recognisers, body);
  if (status >= 500) return recognised === 'overloaded' ? 'overloaded' : 'server-error';
  return recognised === 'context-length' || recognised === 'content-filter' ? recognised : 'client-error';
}

/** The failure class of an error event in the middle of a stream (its error text): overloaded, context-length or content-filter when recognised, rate-limited, else server-error. */
export function classifyStreamError(text: string, recognisers: readonly Recogniser[]): FailureClass {
  return recognise(recognisers, text) ?? (/rate[_ ]?limit/i.test(text) ? 'rate-limited' : 'server-error');
}

const CONNECT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT']);

/** The failure class of a transport error from Node's HTTP client (its `code`, or its cause's). */
export function classifyTransportError(err: unknown): FailureClass {
  const e = err as { code?: string; cause?: { code?: string } };
  const code = e?.code ?? e?.cause?.code;
  if (code && CONNECT_CODES.has(code)) return 'connect-failure';
  return 'reset';
}
