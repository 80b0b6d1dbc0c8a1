/**
 * The answer cache (`lru-cache`, bounded by entries and bytes, with a TTL):
 * plain successful answers, keyed by upstream, path and the request body in
 * canonical form with its stream flags removed, so a streaming request can be
 * answered from a plain one. Used as a stale-if-error fallback tier, and as a
 * fresh cache only when `cache.serveFresh` is set.
 */
import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { CacheConfig } from '../config/runtime-config.js';

export interface CachedAnswer {
  status: number;
  contentType: string;
  body: Buffer;
}

const STREAM_FLAGS = /"stream"\s*:\s*(?:true|false)|"stream_options"\s*:\s*\{[^{}]*\}/g;
/** The commas a cut leaves behind: before `,` or `}`, or right after `{`. */
const STRAY_COMMAS = /,\s*(?=[,}])|(?<=\{)\s*,/g;

/** Overhead counted per entry besides its body. */
const ENTRY_OVERHEAD = 128;

export class ResponseCache {
  private readonly lru: LRUCache<string, CachedAnswer> | undefined;

  constructor(readonly config: CacheConfig) {
    this.lru =
      config.maxEntries > 0 && config.maxBytes > 0
        ? new LRUCache({ max: config.maxEntries, maxSize: config.maxBytes, sizeCalculation: (v) => v.body.length + ENTRY_OVERHEAD, ttl: config.ttlMs })
        : undefined;
  }

  /**
   * The key of a request, or undefined when its body is not a JSON object (such requests are not cached).
   * It is computed on every request of a chain with a cache tier, so it works on the raw text: the stream
   * flags are cut out (inside JSON strings quotes are escaped, so `"stream":` only matches keys) rather
   * than parsing and re-serialising the body. Two requests differing only in key order get two keys.
   */
  static key(upstream: string, path: string, body: Buffer | null): string | undefined {
    const text = body && body.length > 0 ? body.toString('utf8') : '{}';
    if (text.charCodeAt(0) !== 0x7b /* { */) return undefined;
    const request = text.replace(STREAM_FLAGS, '').replace(STRAY_COMMAS, '');
    return createHash('sha1').update(upstream).update('\n').update(path).update('\n').update(request).digest('base64');
  }

  get(key: string | undefined): CachedAnswer | undefined {
    return key === undefined ? undefined : this.lru?.get(key);
  }

  set(key: string | undefined, answer: CachedAnswer): void {
    if (key !== undefined) this.lru?.set(key, answer);
  }
}
