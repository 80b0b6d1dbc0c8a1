/**
 * Sorts an upstream answer into the contract's failure classes. Body
 * recognisers live in one table so each API's real error text is matched in
 * one place.
 */
import type { FailureClass } from '../../api/index.js';

/** Recognisers for error bodies, checked in order: the first match decides. */
const BODY_RECOGNISERS: { class: FailureClass; pattern: RegExp; source: string }[] = [
  { class: 'context-length', pattern: /context_length_exceeded/, source: 'OpenAI code' },
  { class: 'context-length', pattern: /prompt is too long/i, source: 'Anthropic' },
  { class: 'context-length', pattern: /maximum context length/i, source: 'vLLM / OpenAI message' },
  { class: 'context-length', pattern: /exceeds? the available context size|exceed_context_size_error/i, source: 'llama.cpp server' },
  { class: 'context-length', pattern: /context length|context window/i, source: 'Ollama and others' },
  { class: 'content-filter', pattern: /content_filter|content_policy_violation|ResponsibleAIPolicyViolation/, source: 'OpenAI / Azure' },
  { class: 'overloaded', pattern: /overloaded_error|"overloaded"|server is overloaded/i, source: 'Anthropic and others' },
];

function recognise(body: string): FailureClass | undefined {
  for (const r of BODY_RECOGNISERS) if (r.pattern.test(body)) return r.class;
  return undefined;
}

/** The failure class of an HTTP answer, or undefined for a success. */
export function classifyStatus(status: number, body: string): FailureClass | undefined {
  if (status < 400) return undefined;
  if (status === 429) return 'rate-limited';
  if (status === 503 || status === 529) return 'overloaded';
  const recognised = recognise(body);
  if (status >= 500) return recognised === 'overloaded' ? 'overloaded' : 'server-error';
  return recognised === 'context-length' || recognised === 'content-filter' ? recognised : 'client-error';
}

const CONNECT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_CONNECT_TIMEOUT']);

/** The failure class of a transport error from undici. */
export function classifyTransportError(err: unknown): FailureClass {
  const e = err as { code?: string; cause?: { code?: string } };
  const code = e?.code ?? e?.cause?.code;
  if (code && CONNECT_CODES.has(code)) return 'connect-failure';
  return 'reset';
}
