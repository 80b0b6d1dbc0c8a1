/**
 * The shared store as the lease counters see it (LeaseStore), on Redis or
 * Valkey through ioredis: one client per URL and password (a rotated Secret
 * gets a new one), loaded only by a config that names a store. Its being
 * down or hanging never holds a request for long: no request waits on it
 * more than STORE_DEADLINE_MS (lease-counter.ts); there is no offline queue
 * (a command fails at once while the client is not ready); every call
 * answers within SYNC_DEADLINE_MS or fails; and a client with a command
 * unanswered that long is disconnected and connects again, so what it
 * queued is dropped (at most MAX_OUTSTANDING commands are ever queued).
 * A store that answers late, but answers, is slow, not down.
 */
import type { Redis } from 'ioredis';
import type { SharedStoreConfig } from '../config/index.js';
import { LEASE_SCRIPT, MEMBERSHIP_SCRIPT } from './lease-script.js';

/** The longest a request waits on the store. */
export const STORE_DEADLINE_MS = 50;
/** A sync unanswered this long fails: the store is down or hangs, and the connection is dropped and made again. */
export const SYNC_DEADLINE_MS = 1000;
/** At most this many commands are outstanding at once; past it, calls fail without being sent. */
const MAX_OUTSTANDING = 64;

/**
 * One unit of a sync: the limit per window (Infinity: none), all this sidecar spent in the window, what it keeps
 * and wants to hold; the fleet's spent as the store last told it, and this sidecar's as the store last confirmed
 * it (a store that lost its data is re-seeded from them: lease-script.ts).
 */
export interface SyncUnit {
  limit: number;
  spent: number;
  keep: number;
  want: number;
  floor: number;
  confirmed: number;
}

/** Per unit: what this sidecar holds now, and the fleet's spent and held totals; whether the store had lost what this sidecar told it. */
export interface SyncReply {
  held: number[];
  fleetSpent: number[];
  fleetHeld: number[];
  lost: boolean;
}

/** What a lease counter needs of the shared store. */
export interface LeaseStore {
  /** Whether calls may be sent now (connected, nothing hanging). */
  readonly ready: boolean;
  /** One atomic sync of the counter `key`; rejects when the store is not ready or does not answer within its deadline. */
  sync(key: string, pod: string, ttlMs: number, staleMs: number, units: readonly SyncUnit[]): Promise<SyncReply>;
  /** Says this sidecar is alive under `key`; resolves with how many are. */
  heartbeat(key: string, pod: string, staleMs: number): Promise<number>;
}

export class RedisStore implements LeaseStore {
  private redis: Redis | undefined;
  private closed = false;
  /** When each outstanding command was sent. */
  private readonly outstanding = new Set<number>();

  /** `onReady`: the client is ready, the first time or again (a restarted Redis may have lost every count). */
  constructor(
    readonly settings: SharedStoreConfig,
    private readonly onError: (err: Error) => void,
    onReady: () => void = () => {},
  ) {
    import('ioredis')
      .then(({ Redis }) => {
        if (this.closed) return;
        const redis = new Redis(settings.url, {
          password: settings.password,
          enableOfflineQueue: false,
          maxRetriesPerRequest: 0,
          connectTimeout: 1000,
          retryStrategy: (times) => Math.min(100 * times, 2000),
          lazyConnect: false,
        });
        redis.defineCommand('breakwaterLease', { numberOfKeys: 1, lua: LEASE_SCRIPT });
        redis.defineCommand('breakwaterMembers', { numberOfKeys: 1, lua: MEMBERSHIP_SCRIPT });
        redis.on('error', onError);
        redis.on('close', () => this.outstanding.clear());
        redis.on('ready', onReady);
        this.redis = redis;
      })
      .catch((err: unknown) => onError(err as Error));
  }

  /** The connection's state (ready, connecting, reconnecting, ...). */
  get status(): string {
    return this.redis?.status ?? 'connecting';
  }

  get ready(): boolean {
    this.dropIfHanging();
    return this.redis?.status === 'ready' && this.outstanding.size < MAX_OUTSTANDING;
  }

  sync(key: string, pod: string, ttlMs: number, staleMs: number, units: readonly SyncUnit[]): Promise<SyncReply> {
    const args: (string | number)[] = [key, pod, Math.ceil(ttlMs), Math.ceil(staleMs), units.length];
    for (const u of units) args.push(Number.isFinite(u.limit) ? whole(u.limit) : -1, whole(u.spent), whole(u.keep), whole(u.want), whole(u.floor), whole(u.confirmed));
    return this.call<number[]>('breakwaterLease', args).then((reply) => {
      if (!Array.isArray(reply) || reply.length !== units.length * 3 + 1) throw new Error('the lease script answered in an unknown shape');
      const at = (i: number) => Number(reply[i]);
      return { held: units.map((_, u) => at(3 * u)), fleetSpent: units.map((_, u) => at(3 * u + 1)), fleetHeld: units.map((_, u) => at(3 * u + 2)), lost: at(3 * units.length) === 1 };
    });
  }

  heartbeat(key: string, pod: string, staleMs: number): Promise<number> {
    return this.call<number>('breakwaterMembers', [key, pod, Math.ceil(staleMs)]).then(Number);
  }

  close(): void {
    this.closed = true;
    this.redis?.disconnect();
  }

  private call<T>(command: string, args: (string | number)[]): Promise<T> {
    if (!this.ready) return Promise.reject(new Error(`shared store not ready (${this.status})`));
    const redis = this.redis as unknown as Record<string, (...a: (string | number)[]) => Promise<T>>;
    const sent = performance.now();
    this.outstanding.add(sent);
    let timer: NodeJS.Timeout | undefined;
    const answered = redis[command]!(...args).finally(() => this.outstanding.delete(sent));
    answered.catch(() => {});
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`shared store did not answer within ${SYNC_DEADLINE_MS} ms`)), SYNC_DEADLINE_MS);
      timer.unref();
    });
    return Promise.race([answered, late]).finally(() => clearTimeout(timer));
  }

  /** A command unanswered past SYNC_DEADLINE_MS: the store hangs. Reconnecting drops what the client queued. */
  private dropIfHanging(): void {
    const now = performance.now();
    for (const sent of this.outstanding) {
      if (now - sent <= SYNC_DEADLINE_MS) continue;
      this.outstanding.clear();
      this.onError(new Error(`shared store did not answer for ${SYNC_DEADLINE_MS} ms; reconnecting`));
      this.redis?.disconnect(true);
      return;
    }
  }
}

/** A count as the script takes it: a whole, finite, non-negative number. */
const whole = (n: number) => (Number.isFinite(n) ? Math.max(0, Math.round(n)) : 0);
