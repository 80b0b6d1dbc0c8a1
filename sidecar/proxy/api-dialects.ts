/**
 * What differs between the API families: the shape of an error body, how a
 * stream is framed (SSE or NDJSON), how it ends, and where token usage is.
 */
import type { ApiFamily } from '../../api/index.js';

/** Codes of the answers the sidecar makes itself. */
export type LocalErrorCode =
  | 'circuit_open'
  | 'overloaded'
  | 'upstream_timeout'
  | 'upstream_unavailable'
  | 'retry_budget_exhausted'
  | 'request_too_large'
  | 'unknown_upstream'
  | 'invalid_request'
  | 'rate_limited'
  | 'stream_interrupted';

const ANTHROPIC_TYPE: Record<LocalErrorCode, string> = {
  circuit_open: 'overloaded_error',
  overloaded: 'overloaded_error',
  upstream_timeout: 'api_error',
  upstream_unavailable: 'api_error',
  retry_budget_exhausted: 'overloaded_error',
  request_too_large: 'request_too_large',
  unknown_upstream: 'not_found_error',
  invalid_request: 'invalid_request_error',
  rate_limited: 'rate_limit_error',
  stream_interrupted: 'api_error',
};

const OPENAI_TYPE: Record<LocalErrorCode, string> = {
  circuit_open: 'server_error',
  overloaded: 'server_error',
  upstream_timeout: 'server_error',
  upstream_unavailable: 'server_error',
  retry_budget_exhausted: 'server_error',
  request_too_large: 'invalid_request_error',
  unknown_upstream: 'invalid_request_error',
  invalid_request: 'invalid_request_error',
  rate_limited: 'requests',
  stream_interrupted: 'server_error',
};

/** An error body in the family's own shape. */
export function errorBody(api: ApiFamily, code: LocalErrorCode, message: string): string {
  switch (api) {
    case 'anthropic':
      return JSON.stringify({ type: 'error', error: { type: ANTHROPIC_TYPE[code], message, code } });
    case 'ollama':
      return JSON.stringify({ error: `${code}: ${message}` });
    default:
      return JSON.stringify({ error: { message, type: OPENAI_TYPE[code], param: null, code } });
  }
}

export type StreamFraming = 'sse' | 'ndjson';

export function streamFraming(contentType: string | undefined): StreamFraming | undefined {
  if (!contentType) return undefined;
  if (contentType.includes('text/event-stream')) return 'sse';
  if (contentType.includes('ndjson')) return 'ndjson';
  return undefined;
}

/** True once the buffered start of a stream holds a data event (not just comments or keep-alives). */
export function hasDataEvent(framing: StreamFraming, text: string): boolean {
  if (framing === 'ndjson') return /\S/.test(text);
  return text.startsWith('data:') || text.includes('\ndata:');
}

/** The event that ends a stream after a failure, in the family's shape. */
export function streamErrorEvent(api: ApiFamily, framing: StreamFraming, code: LocalErrorCode, message: string): string {
  if (framing === 'ndjson') return JSON.stringify({ error: `${code}: ${message}`, done: true }) + '\n';
  if (api === 'anthropic') return `event: error\ndata: ${errorBody('anthropic', code, message)}\n\n`;
  return `data: ${errorBody('openai', code, message)}\n\n`;
}

/** True when the tail of a stream holds the family's terminator; undefined when the family has none to check. */
export function streamTerminated(api: ApiFamily, tail: string): boolean | undefined {
  switch (api) {
    case 'openai':
      return tail.includes('data: [DONE]');
    case 'anthropic':
      return tail.includes('message_stop');
    case 'ollama':
      return /"done"\s*:\s*true/.test(tail);
    default:
      return undefined;
  }
}

export interface TokenUsage {
  input: number;
  output: number;
}

const INPUT_TOKENS = /"(?:prompt_tokens|input_tokens|prompt_eval_count)"\s*:\s*([0-9]+)/g;
const OUTPUT_TOKENS = /"(?:completion_tokens|output_tokens|eval_count)"\s*:\s*([0-9]+)/g;

function lastMatch(pattern: RegExp, text: string): number {
  let value = 0;
  for (const m of text.matchAll(pattern)) value = Number(m[1]);
  return value;
}

/** Token usage reported in a response body or stream (OpenAI, Anthropic and Ollama field names). */
export function tokenUsage(text: string): TokenUsage | undefined {
  const input = lastMatch(INPUT_TOKENS, text);
  const output = lastMatch(OUTPUT_TOKENS, text);
  return input || output ? { input, output } : undefined;
}
