/**
 * dialects/ — everything the sidecar knows about one API family, one module
 * each: openai (also vLLM, llama.cpp, Ollama's /v1 and gateways that speak
 * it) and its Responses API (openai-responses), anthropic, ollama (its
 * native /api), generic. A dialect gives the
 * shape of error bodies, how a stream ends and reports errors, where usage
 * is, the recognisers for context-length and content-filter errors, and the
 * answers the sidecar composes (cache and static tiers). A request's dialect
 * is chosen once, when it arrives, from the addressed upstream's `api`.
 */
import type { ApiFamily } from '../../../api/index.js';
import { anthropic } from './anthropic.js';
import { generic } from './generic.js';
import { ollamaChat, ollamaGenerate } from './ollama.js';
import { openai } from './openai.js';
import { openaiResponses } from './openai-responses.js';
import type { Dialect } from './types.js';

export type * from './types.js';

/** The Responses API (`/v1/responses`, Azure's `/openai/responses`), else Chat Completions and the rest of OpenAI's paths. */
const RESPONSES_PATH = /(?:^|\/)(?:v1|openai)\/responses(?:\/|$)/;
const openaiAt = (path: string) => (RESPONSES_PATH.test(path.split('?', 1)[0]!) ? openaiResponses : openai);

/** The dialect of a request to an upstream of family `api` at `path` (the path after the upstream's name). */
export function dialectFor(api: ApiFamily, path: string): Dialect {
  switch (api) {
    case 'openai':
      return openaiAt(path);
    case 'anthropic':
      return anthropic;
    case 'ollama':
      // Ollama serves its own API under /api and OpenAI's under /v1.
      if (!path.startsWith('/api/')) return openaiAt(path);
      return path.startsWith('/api/generate') ? ollamaGenerate : ollamaChat;
    case 'generic':
      return generic;
  }
}

/** The dialect a request's path implies when no upstream says (the mock upstream serves every API on one port). */
export function dialectOfPath(path: string): Dialect {
  if (path.includes('/messages')) return anthropic;
  return dialectFor(path.startsWith('/api/') ? 'ollama' : 'openai', path);
}
