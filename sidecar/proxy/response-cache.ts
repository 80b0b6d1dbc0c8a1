/**
 * The answer cache (`lru-cache`, bounded by entries and bytes, with a TTL):
 * plain successful answers, keyed by upstream, path and the request body in
 * canonical form with its stream flags removed, so a streaming request can be
 * answered from a plain one. Used as a stale-if-error fallback tier, and as a
 * fresh cache only when `cache.serveFresh` is set.
 */
import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { canonicalJson } from '../../api/index.js';
import type { CacheConfig } from '../config/runtime-config.js';

export interface CachedAnswer {
  status: number;
  contentType: string;
  body: Buffer;
}

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

  /** The key of a request, or undefined when its body is not JSON (such requests are not cached). */
  static key(upstream: string, path: string, body: Buffer | null): string | undefined {
    let request: Record<string, unknown> = {};
    if (body && body.length > 0) {
      try {
        request = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
      } catch {
        return undefined;
      }
      delete request.stream;
      delete request.stream_options;
    }
    return createHash('sha256').update(`${upstream}\n${path}\n${canonicalJson(request)}`).digest('hex');
  }

  get(key: string | undefined): CachedAnswer | undefined {
    return key === undefined ? undefined : this.lru?.get(key);
  }

  set(key: string | undefined, answer: CachedAnswer): void {
    if (key !== undefined) this.lru?.set(key, answer);
  }
}
