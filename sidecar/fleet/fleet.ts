/**
 * The fleet as this sidecar sees it: the shared store named by the config
 * in force (spec.sharedState), this sidecar's name in it, how many pods
 * share the policy's limits (the controller's count, and the sidecars the
 * store saw speak in the last STALE_MS, whichever is larger), and the fleet's
 * rate limits per upstream. It makes the fleet's budgets for the BudgetBook;
 * both outlive config changes: a new URL or password gives a new client, and
 * the counters keep what they spent.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { RuntimeConfig } from '../config/index.js';
import type { BudgetLimits, Clock } from '../resilience/index.js';
import { FleetBudget } from './fleet-budget.js';
import { FleetRateLimiter } from './fleet-rate.js';
import { STALE_MS, type CounterDeps } from './lease-counter.js';
import { counterKey, membersKey } from './lease-script.js';
import { RedisStore } from './redis-store.js';

/** How often this sidecar says it is alive, so the others can count it. */
const MEMBERSHIP_MS = 5000;
/** Before the first count, it asks this often. */
const FIRST_MEMBERSHIP_MS = 250;
/** A store found to have lost its data has every counter report again, at most this often. */
const LOST_RESYNC_MS = 1000;

export interface FleetStatus {
  /** The shared store: off (none named), ready, or unavailable (down, hanging, not yet connected). */
  store: 'off' | 'ready' | 'unavailable';
  /** This sidecar's name in the store. */
  pod: string;
  /** How many pods the controller says the policy selects, and how many the store saw speak lately. */
  selectedPods?: number;
  podsSeen?: number;
}

export class Fleet {
  readonly pod = `${hostname().replace(/[^A-Za-z0-9.-]/g, '_').slice(0, 48)}-${randomBytes(6).toString('hex')}`;
  private store: RedisStore | undefined;
  private policy = '';
  private selectedPods: number | undefined;
  private podsSeen: number | undefined;
  private readonly rates = new Map<string, FleetRateLimiter>();
  private membership: unknown;
  private readonly deps: CounterDeps;

  constructor(
    private readonly clock: Clock,
    private readonly onError: (err: Error) => void = () => {},
  ) {
    this.deps = {
      clock,
      pod: this.pod,
      store: () => this.store,
      pods: () => this.pods(),
      waited: (ms) => this.onWait?.(ms),
      track: (counter, on) => void (on ? this.counters.add(counter) : this.counters.delete(counter)),
      lost: () => {
        // The store lost its data: every counter reports again now (once a second at most), not at its next heartbeat.
        if (clock.now() - this.lostAt < LOST_RESYNC_MS) return;
        this.lostAt = clock.now();
        this.onError(new Error('the shared store had lost the fleet\'s counts; re-seeded from what the sidecars knew'));
        this.counters.forEach((c) => c.resync());
      },
    };
  }

  private lostAt = -Infinity;

  /** Every live counter, told when the store connects (again) or lost its data. */
  private readonly counters = new Set<{ resync(): void }>();

  /** Told how long each request that waited for the store waited (ms). */
  onWait: ((ms: number) => void) | undefined;

  /** Follows `config`: its store, its policy's name (the keys' namespace), its pod count and its fleet rate limits. */
  configure(config: RuntimeConfig): void {
    const settings = config.sharedState;
    if (JSON.stringify(settings) !== JSON.stringify(this.store?.settings)) {
      this.store?.close();
      this.store = settings && new RedisStore(settings, this.onError, () => this.counters.forEach((c) => c.resync()));
      this.clock.clearTimer(this.membership);
      this.membership = undefined;
      if (this.store) this.countMembers(FIRST_MEMBERSHIP_MS);
    }
    if (config.version.policy !== this.policy) this.podsSeen = undefined;
    this.policy = config.version.policy;
    this.selectedPods = config.selectedPods;
    const fleetRates = [...config.upstreams.values()].filter((u) => u.rateLimit.fleet && (u.rateLimit.requestsPerMinute > 0 || u.rateLimit.tokensPerMinute > 0));
    for (const [name, limiter] of this.rates) {
      if (fleetRates.some((u) => u.name === name)) continue;
      limiter.close();
      this.rates.delete(name);
    }
    for (const { name, rateLimit } of fleetRates) {
      const current = this.rates.get(name);
      if (current) current.reconfigure(rateLimit);
      else this.rates.set(name, new FleetRateLimiter(rateLimit, this.deps, (start) => counterKey(this.policy, `rate/${name}`, start)));
    }
  }

  /** A fleet budget, counted under `what` (policy, or upstream/<name>). */
  budget(what: string, limits: BudgetLimits): FleetBudget {
    return new FleetBudget(limits, this.deps, (start) => counterKey(this.policy, `budget/${what}`, start));
  }

  /** The fleet's rate limiter of `upstream`, when its rate limit is the fleet's. */
  rateLimiter(upstream: string): FleetRateLimiter | undefined {
    return this.rates.get(upstream);
  }

  rateLimiters(): Iterable<[string, FleetRateLimiter]> {
    return this.rates.entries();
  }

  /** How many pods share the limits: the larger of the controller's count and the store's (undefined: neither known). */
  pods(): number | undefined {
    const known = [this.selectedPods, this.podsSeen].filter((n) => n !== undefined);
    return known.length === 0 ? undefined : Math.max(...known);
  }

  status(): FleetStatus {
    const store = !this.store ? 'off' : this.store.ready ? 'ready' : 'unavailable';
    return { store, pod: this.pod, ...(this.selectedPods === undefined ? {} : { selectedPods: this.selectedPods }), ...(this.podsSeen === undefined ? {} : { podsSeen: this.podsSeen }) };
  }

  close(): void {
    this.clock.clearTimer(this.membership);
    for (const limiter of this.rates.values()) limiter.close();
    this.store?.close();
  }

  private countMembers(ms: number): void {
    this.membership = this.clock.setTimer(() => {
      const store = this.store;
      if (!store?.ready) return this.countMembers(this.podsSeen === undefined ? FIRST_MEMBERSHIP_MS : MEMBERSHIP_MS);
      store
        .heartbeat(membersKey(this.policy), this.pod, STALE_MS)
        .then((n) => {
          if (store === this.store && Number.isSafeInteger(n) && n >= 1) this.podsSeen = n;
        })
        .catch(() => {})
        .finally(() => {
          if (store === this.store) this.countMembers(MEMBERSHIP_MS);
        });
    }, ms);
  }
}
