/**
 * answers/ — answers the sidecar keeps, makes or judges instead of relaying
 * them as they came: the answer cache (this file) and the fleet's Redis
 * behind it (shared-answers.ts), the cache and static tiers' answers
 * composed in the app's API's shape (composed-answers.ts), and the check
 * that turns an unusable 200 into a failure (validate-answer.ts).
 *
 * The answer cache (`lru-cache`, bounded by entries and bytes, with a TTL):
 * plain successful answers, keyed by upstream, path and the request body in
 * canonical form with its stream flags removed, so a streaming request can be
 * answered from a plain one. Used as a stale-if-error fallback tier, and as a
 * fresh cache only when `cache.serveFresh` is set. With `cache.redis`, a fleet
 * of pods shares answers: Redis is a second level behind the local LRU
 * (shared-answers.ts). The answers kept here depend on the local settings
 * alone: a new Redis URL or password changes the shared client, not them.
 */
import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { CacheConfig } from '../../config/index.js';
import { SharedAnswers } from './shared-answers.js';

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

/** The settings the kept answers depend on: all but the shared Redis, whose URL and password only change its client. */
const localSettings = ({ redis: _shared, ...local }: CacheConfig) => JSON.stringify(local);

export class ResponseCache {
  private readonly lru: LRUCache<string, CachedAnswer> | undefined;
  /** The fleet's Redis, when the config names one. */
  private shared: SharedAnswers | undefined;

  constructor(
    private settings: CacheConfig,
    private readonly onRedisError: (err: Error) => void = () => {},
  ) {
    this.lru =
      settings.maxEntries > 0 && settings.maxBytes > 0
        ? new LRUCache({ max: settings.maxEntries, maxSize: settings.maxBytes, sizeCalculation: (v) => v.body.length + ENTRY_OVERHEAD, ttl: settings.ttlMs })
        : undefined;
    this.shared = settings.redis && new SharedAnswers(settings.redis, onRedisError);
  }

  /** The settings in force. */
  get config(): CacheConfig {
    return this.settings;
  }

  /** Whether the answers kept here stay good under `config`: its local settings are these (the shared Redis aside). */
  keepsAnswersUnder(config: CacheConfig): boolean {
    return localSettings(config) === localSettings(this.settings);
  }

  /**
   * Follows `config`, whose local settings are this cache's (keepsAnswersUnder): a shared Redis with
   * another URL or password (a rotated Secret) gets a new client, which authenticates afresh; the
   * answers kept here stay. Nothing changes when the shared Redis is the one in use.
   */
  follow(config: CacheConfig): void {
    if (JSON.stringify(config.redis) !== JSON.stringify(this.settings.redis)) {
      this.shared?.close();
      this.shared = config.redis && new SharedAnswers(config.redis, this.onRedisError);
    }
    this.settings = config;
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
    return this.shared?.status ?? 'off';
  }

  /** The answer kept for `key`: from this pod first, then from the fleet's Redis. */
  async get(key: string | undefined): Promise<CachedAnswer | undefined> {
    if (key === undefined) return undefined;
    const local = this.lru?.get(key);
    if (local || !this.shared) return local;
    const body = await this.shared.get(key);
    if (!body) return undefined;
    const answer = { status: 200, contentType: 'application/json', body };
    this.lru?.set(key, answer);
    return answer;
  }

  set(key: string | undefined, answer: CachedAnswer): void {
    if (key === undefined) return;
    this.lru?.set(key, answer);
    this.shared?.set(key, answer.body, this.settings.ttlMs);
  }

  close(): void {
    this.shared?.close();
  }
}
