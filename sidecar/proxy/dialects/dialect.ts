/**
 * dialects/ — everything the sidecar knows about one API, one module each:
 * openai (Chat Completions and Completions; also vLLM, llama.cpp, Ollama's
 * /v1 and gateways that speak it), its Responses API (openai-responses),
 * anthropic, ollama (its native /api), generic, and pass-through for the
 * paths of a known API whose answers are not text (generic.ts). A dialect
 * owns both sides: the request (the model, the stream flag, the output cap,
 * JSON mode, asking a stream for its usage, building a continuation,
 * degraded mode's limits) and the answer (error bodies, how a stream's
 * events read and end, where usage is, the recognisers for context-length
 * and content-filter errors, the answers the sidecar composes). A request's
 * dialect is chosen once, when it arrives, from the addressed upstream's
 * `api` and the path, by the registry below. The types a dialect speaks in
 * are in types.ts, the pieces several share in shared.ts, and how an
 * answer's status and error text become a failure class, by the dialect's
 * recognisers, in classify.ts. The framing of a stream (SSE or NDJSON) is
 * the stream's own (../streams/stream-framing.ts).
 */
import type { ApiFamily } from '../../../api/index.js';
import { anthropic } from './anthropic.js';
import { generic, passThrough } from './generic.js';
import { ollamaChat, ollamaGenerate } from './ollama.js';
import { openai } from './openai.js';
import { openaiResponses } from './openai-responses.js';
import type { Dialect } from './types.js';

export type * from './types.js';

/** Unreserved characters, percent-encoded: a server decodes them, so `/chat/%63ompletions` is Chat Completions. */
const ENCODED_UNRESERVED = /%(?:[46][1-9A-F]|[57][0-9A]|3[0-9]|2D|2E|5F|7E)/gi;

/** The path as a server routes it: without its query, unreserved characters decoded, and without a trailing slash. */
function pathOnly(path: string): string {
  let p = path.split('?', 1)[0]!;
  if (p.includes('%')) p = p.replace(ENCODED_UNRESERVED, (e) => String.fromCharCode(parseInt(e.slice(1), 16)));
  return p.endsWith('/') ? p.replace(/(.)\/+$/, '$1') : p;
}

/** Creating a response (retrieving one is a GET, and its sub-resources and input_tokens pass through). */
const RESPONSES_PATH = /(?:^|\/)(?:v1|openai)\/responses$/;
/** Chat Completions and the legacy Completions (Azure's deployment paths end the same way). */
const COMPLETIONS_PATH = /\/(?:chat\/)?completions$/;
const openaiOther = passThrough(openai, false);
const anthropicOther = passThrough(anthropic, false);
const ollamaOther = passThrough(ollamaChat, false);

/** OpenAI's paths: the Responses API, Chat Completions and Completions; the rest (embeddings, audio, files…) passes through. */
function openaiAt(path: string): Dialect {
  const p = pathOnly(path);
  if (RESPONSES_PATH.test(p)) return openaiResponses;
  return COMPLETIONS_PATH.test(p) ? openai : openaiOther;
}

/** The registry: for each API family, the dialect of a request at a path (the path after the upstream's name). */
const FAMILIES: Record<ApiFamily, (path: string) => Dialect> = {
  openai: openaiAt,
  // Messages; the rest (count_tokens, batches, models, files) passes through.
  anthropic: (path) => (/\/messages$/.test(pathOnly(path)) ? anthropic : anthropicOther),
  // Ollama serves its own API under /api and OpenAI's under /v1.
  ollama: (path) => {
    const p = pathOnly(path);
    if (!p.startsWith('/api/')) return openaiAt(path);
    if (p === '/api/generate') return ollamaGenerate;
    return p === '/api/chat' ? ollamaChat : ollamaOther;
  },
  generic: () => generic,
};

/** What passes through for each family with a method that may be sent twice (RFC 9110's idempotent methods). */
const IDEMPOTENT: Record<ApiFamily, Dialect> = { openai: passThrough(openai, true), anthropic: passThrough(anthropic, true), ollama: passThrough(ollamaChat, true), generic };
const IDEMPOTENT_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']);
const OTHER: Record<ApiFamily, Dialect> = { openai: openaiOther, anthropic: anthropicOther, ollama: ollamaOther, generic };

/**
 * The dialect of a request to an upstream of family `api` at `path` (the path after the upstream's name).
 * Only a POST creates an answer: a GET, DELETE or any other method (retrieving or deleting a stored
 * response, listing stored completions) passes through, so no cache or static tier answers it.
 */
export function dialectFor(api: ApiFamily, path: string, method = 'POST'): Dialect {
  if (method === 'POST') return FAMILIES[api](path);
  return IDEMPOTENT_METHODS.has(method) ? IDEMPOTENT[api] : OTHER[api];
}

/** The dialect a request's path implies when no upstream says (the mock upstream serves every API on one port). */
export function dialectOfPath(path: string): Dialect {
  if (path.includes('/messages')) return anthropic;
  return dialectFor(path.startsWith('/api/') ? 'ollama' : 'openai', path);
}
