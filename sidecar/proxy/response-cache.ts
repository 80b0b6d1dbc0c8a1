/**
 * The answer cache (`lru-cache`, bounded by entries and bytes, with a TTL):
 * plain successful answers, keyed by upstream, path and the request body in
 * canonical form with its stream flags removed, so a streaming request can be
 * answered from a plain one. Used as a stale-if-error fallback tier, and as a
 * fresh cache only when `cache.serveFresh` is set. With `cache.redis`, a fleet
 * of pods shares answers: Redis is a second level behind the local LRU, asked
 * with a short timeout, and its being down never fails or slows a request (no
 * offline queue: commands fail at once while it is away).
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { LRUCache } from 'lru-cache';
import type { CacheConfig } from '../config/index.js';

export interface CachedAnswer {
  status: number;
  contentType: string;
  body: Buffer;
}

const STREAM_FLAGS = /"stream"\s*:\s*(?:true|false)|"stream_options"\s*:\s*\{[^{}]*\}/g;
/** The commas a cut leaves behind: before `,` or `}`, or right after `{`. */
const STRAY_COMMAS = /,\s*(?=[,}])|(?<=\{)\s*,/g;

/** How long a lookup waits for Redis before answering "not cached". */
const REDIS_TIMEOUT_MS = 100;
const REDIS_PREFIX = 'breakwater:answer:';

/** Overhead counted per entry besides its body. */
const ENTRY_OVERHEAD = 128;

export class ResponseCache {
  private readonly lru: LRUCache<string, CachedAnswer> | undefined;
  /** The fleet's Redis, once its client has loaded (loaded only by a config that names one). */
  private redis: Redis | undefined;
  private closed = false;

  constructor(
    readonly config: CacheConfig,
    onRedisError: (err: Error) => void = () => {},
  ) {
    this.lru =
      config.maxEntries > 0 && config.maxBytes > 0
        ? new LRUCache({ max: config.maxEntries, maxSize: config.maxBytes, sizeCalculation: (v) => v.body.length + ENTRY_OVERHEAD, ttl: config.ttlMs })
        : undefined;
    const shared = config.redis;
    if (!shared) return;
    import('ioredis').then(
      ({ Redis }) => {
        if (this.closed) return;
        this.redis = new Redis(shared.url, {
          password: shared.password,
          enableOfflineQueue: false,
          maxRetriesPerRequest: 0,
          connectTimeout: 1000,
          retryStrategy: (times) => Math.min(200 * times, 5000),
        });
        this.redis.on('error', onRedisError);
      },
      (err: unknown) => onRedisError(err as Error),
    );
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

  /** The shared cache's connection state (ready, connecting, reconnecting, ...), or 'off'. */
  get sharedStatus(): string {
    return this.redis?.status ?? (this.config.redis ? 'connecting' : 'off');
  }

  /** The answer kept for `key`: from this pod first, then from the fleet's Redis. */
  async get(key: string | undefined): Promise<CachedAnswer | undefined> {
    if (key === undefined) return undefined;
    const local = this.lru?.get(key);
    if (local || !this.redis || this.redis.status !== 'ready') return local;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), REDIS_TIMEOUT_MS)));
    const body = await Promise.race([this.redis.getBuffer(REDIS_PREFIX + key).catch(() => null), timeout]).finally(() => clearTimeout(timer));
    if (!body) return undefined;
    const answer = { status: 200, contentType: 'application/json', body };
    this.lru?.set(key, answer);
    return answer;
  }

  set(key: string | undefined, answer: CachedAnswer): void {
    if (key === undefined) return;
    this.lru?.set(key, answer);
    if (this.redis?.status === 'ready') this.redis.set(REDIS_PREFIX + key, answer.body, 'PX', this.config.ttlMs).catch(() => {});
  }

  close(): void {
    this.closed = true;
    this.redis?.disconnect();
  }
}
