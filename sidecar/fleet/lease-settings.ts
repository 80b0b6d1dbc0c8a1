/**
 * What a lease counter (lease-counter.ts) is given and answers, and the
 * timings it keeps: how far ahead a lease covers, how often a counter speaks
 * to the store, when a silent pod loses its lease, and the divisor of a
 * local share when no pod count is known.
 */
import type { Clock } from '../resilience/index.js';
import type { LeaseStore } from './redis-store.js';

export type Units = number[];

export interface CounterSpec {
  /** Length of a window, and the limits of the window starting at `start` (Infinity = no limit), one per unit. */
  windowMs: number;
  limits(start: number): Units;
  /** The store's key of the window starting at `start`. */
  key(start: number): string;
  /** The most the fleet's sidecars hold beyond their in-flight needs, together, as a share of a limit (each 1/pods of it). */
  maxLeaseShare: number;
  /**
   * A budget's counter hears from the store as soon as it can and then at least this often, idle or not, so every
   * pod knows the fleet's spent within this long: the floor a store that lost its data is re-seeded from.
   */
  refreshMs?: number;
}

export interface CounterDeps {
  clock: Clock;
  store(): LeaseStore | undefined;
  /** This sidecar's name in the store. */
  pod: string;
  /** How many pods share the limits, as last said (undefined: unknown). */
  pods(): number | undefined;
  /** A request waited `ms` for the store (for the wait histogram). */
  waited?(ms: number): void;
  /** Keeps a counter known (or forgets a closed one), to be told when the store connects again. */
  track?(counter: { resync(): void }, on: boolean): void;
  /** The store had lost what this sidecar told it (or its count went backwards): every counter reports again at once. */
  lost?(): void;
}

/**
 * Why a take was refused: the fleet spent the limit; the take asks for more than the fleet has left; the rest is
 * held (leases elsewhere, requests in flight); the store, connected, did not answer within STORE_DEADLINE_MS; or
 * this pod has not heard from the store in this window, so knows nothing of what the fleet spent.
 */
export type Refused = 'spent' | 'too-large' | 'held' | 'slow' | 'unheard';

export type Admission = { ok: true } | { ok: false; unit: number; retryAfterMs: number; reason: Refused };

/** A lease covers this long of this pod's use at its recent pace. */
export const LEAD_MS = 2000;
/** A counter with anything held or unreported syncs at least this often: it gives back what it does not use, and its pod stays known. */
export const HEARTBEAT_MS = 3000;
/** A counter that holds nothing and reported all it spent in the window says so again this often. */
export const SETTLED_HEARTBEAT_MS = 10_000;
/** A sidecar silent this long loses what it held (lease-script.ts). */
export const STALE_MS = 15_000;
/** In local-share mode, the store is tried again this often. */
export const RETRY_MS = 1000;
/** The divisor of a local share when no pod count is known: a share of 1% of what is left. */
export const UNKNOWN_FLEET_PODS = 100;
/** Refused only because of what is held elsewhere or in flight: ask again this soon. */
export const HELD_RETRY_MS = 1000;

/** `promise`, or 'late' once `ms` have passed on `clock`. */
export function within<T>(clock: Clock, ms: number, promise: Promise<T>): Promise<T | 'late'> {
  let timer: unknown;
  const late = new Promise<'late'>((resolve) => (timer = clock.setTimer(() => resolve('late'), ms)));
  return Promise.race([promise, late]).finally(() => clock.clearTimer(timer));
}

/**
 * The first unit `amount` asks more of than the fleet has left (`fleetSpent`: as last seen, with this pod's since,
 * a figure the fleet's count can only have passed): refused until the window's end, as it cannot fit before.
 */
export function beyondLeft(amount: Units, limits: Units, fleetSpent: (u: number) => number, untilRollMs: number): Admission | undefined {
  for (let u = 0; u < limits.length; u++) {
    if (!Number.isFinite(limits[u]) || amount[u]! <= 0 || fleetSpent(u) + amount[u]! <= limits[u]!) continue;
    return { ok: false, unit: u, retryAfterMs: untilRollMs, reason: fleetSpent(u) >= limits[u]! ? 'spent' : 'too-large' };
  }
  return undefined;
}

/** Why `amount` is refused, by the first unit it does not fit: `why`, asking again in HELD_RETRY_MS, as what holds the rest may soon let go. */
export function refusal(amount: Units, limits: Units, available: (u: number) => number, untilRollMs: number, why: Refused): Admission {
  const u = Math.max(0, limits.findIndex((limit, u) => Number.isFinite(limit) && amount[u]! > 0 && available(u) < amount[u]!));
  return { ok: false, unit: u, retryAfterMs: Math.min(untilRollMs, HELD_RETRY_MS), reason: why };
}
