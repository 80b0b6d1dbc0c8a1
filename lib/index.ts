/**
 * lib/ — small helpers that the sidecar, the controller and the CLI share and
 * that belong to neither: listening on a HOST:PORT, reading headers, parsing
 * server-sent events and the text of an unfinished one, the short members of a JSON object too large to parse, text made safe to print on a terminal, and a name made safe for a Redis key. Nothing here knows about policies or LLM APIs.
 */
export * from './listen.js';
export * from './headers.js';
export * from './sse.js';
export * from './pending-text.js';
export * from './json-members.js';
export * from './printable.js';
export * from './redis-tag.js';
