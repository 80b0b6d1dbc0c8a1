/**
 * The fleet's Redis, a second level behind a pod's answer cache
 * (response-cache.ts): one client, loaded only by a config that names a Redis,
 * asked with a short timeout. Its being down never fails or slows a request:
 * no offline queue, so commands fail at once while it is away, and a lookup
 * that it does not answer in time is a miss. A client is built for one URL and
 * password; another (a rotated Secret) takes a new client, which
 * authenticates afresh.
 */
import type { Redis } from 'ioredis';
import { redisTag } from '../../../lib/index.js';

export interface SharedCacheSettings {
  url: string;
  password?: string;
  /** The policy whose answers these are (`namespace/name`): its keys are its own. */
  policy: string;
}

/** How long a lookup waits for Redis before answering "not cached". */
const REDIS_TIMEOUT_MS = 100;
/** The policy names a key (a hash tag: a policy's keys stay together in a Redis Cluster). */
const keyPrefix = (policy: string) => `breakwater:answer:${redisTag(policy)}:`;

export class SharedAnswers {
  /** The client, once `ioredis` has loaded. */
  private redis: Redis | undefined;
  private closed = false;
  private readonly prefix: string;

  constructor(
    readonly settings: SharedCacheSettings,
    onError: (err: Error) => void,
  ) {
    this.prefix = keyPrefix(settings.policy);
    import('ioredis')
      .then(({ Redis }) => {
        if (this.closed) return;
        this.redis = new Redis(settings.url, {
          password: settings.password,
          enableOfflineQueue: false,
          maxRetriesPerRequest: 0,
          connectTimeout: 1000,
          retryStrategy: (times) => Math.min(200 * times, 5000),
        });
        this.redis.on('error', onError);
      })
      .catch((err: unknown) => onError(err as Error));
  }

  /** The connection's state (ready, connecting, reconnecting, ...). */
  get status(): string {
    return this.redis?.status ?? 'connecting';
  }

  /** The body kept under `key`, or undefined when there is none, Redis is not ready, or it does not answer in time. */
  async get(key: string): Promise<Buffer | undefined> {
    if (this.redis?.status !== 'ready') return undefined;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), REDIS_TIMEOUT_MS)));
    const body = await Promise.race([this.redis.getBuffer(this.prefix + key).catch(() => null), timeout]).finally(() => clearTimeout(timer));
    return body ?? undefined;
  }

  /** Keeps `body` under `key` for `ttlMs`, if Redis is ready; never waited for. */
  set(key: string, body: Buffer, ttlMs: number): void {
    if (this.redis?.status === 'ready') this.redis.set(this.prefix + key, body, 'PX', ttlMs).catch(() => {});
  }

  close(): void {
    this.closed = true;
    this.redis?.disconnect();
  }
}
