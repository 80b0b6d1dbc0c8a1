/**
 * The lease state machine of one fleet-wide counter (a budget's tokens and
 * cost, or a rate's requests and tokens), on the injectable clock. A sidecar
 * spends from a lease, a slice of the fleet's limit reserved for it in the
 * store (lease-script.ts), without asking the store per request:
 *   shared       a request that fits in the lease is taken at once; one that
 *                asks for more than the fleet has left is refused at once
 *                (until the window's end), taking no lease; one that does not
 *                fit waits for the next sync, which asks for what every
 *                waiting request needs, at most STORE_DEADLINE_MS (50 ms);
 *                past it, while the store is connected but slow, it is refused
 *                (ask again in a second), its demand counted in the pace so
 *                the lease grows. A refused request's part of the lease is
 *                given back at once. The lease is topped up ahead of need
 *                (under half of what this pod's pace calls for: lease-plan.ts)
 *                and given back when unused, at least every HEARTBEAT_MS.
 *   local-share  the store is not connected, failed, or left a sync unanswered
 *                for SYNC_DEADLINE_MS (1 s): nothing waits on it. The sidecar
 *                spends what it held plus 1/pods of what the fleet had left
 *                when last seen. It tries the store every RETRY_MS; the first
 *                sync reports all it spent.
 * What this pod knows of the fleet's spending in the window (`seen`): what
 * the store last said; nothing spent, at the start of a window it was running
 * at; what it kept across a restart (kept-state.ts); else nothing, and a pod
 * that knows nothing takes nothing until the store answers (its requests wait
 * for it, at most STORE_DEADLINE_MS). Windows follow the wall clock; a new one
 * is another key in the store; requests in flight carry their reservations over.
 */
import { STORE_DEADLINE_MS, SYNC_DEADLINE_MS } from './redis-store.js';
import { HEARTBEAT_MS, RETRY_MS, SETTLED_HEARTBEAT_MS, STALE_MS, beyondLeft, refusal, within, type Admission, type CounterDeps, type CounterSpec, type Refused, type Units } from './lease-settings.js';
import { LeaseBook } from './lease-book.js';
export * from './lease-settings.js';

export class LeaseCounter extends LeaseBook {
  /** The sync in flight, and the one to follow it (which waiting requests join); the next timed sync, and when. */
  private round: Promise<void> | undefined;
  private next: Promise<void> | undefined;
  private timer: unknown;
  private due = Infinity;
  private closed = false;
  /** Requests waiting to hear from a store that is not connected; whether a refused request's lease is to go back. */
  private readonly hearing = new Set<() => void>();
  private giveBack = false;

  constructor(spec: CounterSpec, deps: CounterDeps, units: number) {
    super(spec, deps, units);
    deps.track?.(this, true);
    if (spec.refreshMs !== undefined) this.schedule(0);
  }

  /** The store connected (maybe restarted empty) or lost its data: say at once what this pod spent and holds, and hear the fleet's. */
  resync(): void {
    if (!this.closed && (!this.seen || this.spec.refreshMs !== undefined || this.spent.some((x) => x > 0) || this.reserved.some((x) => x > 0))) void this.sync();
  }

  /** New limits; what was spent in the window stays spent (it starts over if the window's length changed). A lower limit shrinks the lease. */
  reconfigure(spec: CounterSpec): void {
    if (spec.windowMs !== this.spec.windowMs) this.start = -1;
    this.spec = spec;
    this.roll();
    const before = this.limits;
    this.limits = spec.limits(this.start);
    if (this.limits.some((limit, u) => limit < before[u]!)) {
      // What the lease holds past the new limit (less the fleet's spent and the others' leases) is this pod's no more.
      this.held = this.held.map((h, u) => Math.min(h, this.reserved[u]! + this.unreported(u) + Math.max(0, this.limits[u]! - this.fleetSpent(u) - Math.max(0, (this.seen?.held[u] ?? 0) - h))));
      if (this.mode === 'shared') void this.sync();
    }
    if (this.mode === 'local-share') this.shareOut();
  }

  /** Takes `amount` if it fits in what this pod may spend; may wait for a sync of the store (at most STORE_DEADLINE_MS). */
  take(amount: Units): Admission | Promise<Admission> {
    this.roll();
    const over = beyondLeft(amount, this.limits, (u) => this.fleetSpent(u), this.untilRoll());
    if (over) return over;
    if (this.fits(amount)) return this.reserve(amount);
    if (this.mode === 'shared' && !this.deps.store()?.ready) this.enterLocalShare();
    if (this.mode === 'local-share' && this.seen) return this.fits(amount) ? this.reserve(amount) : this.refusal(amount, 'held');
    return this.await(amount);
  }

  /** Ends a reservation of `reserved`, charging `used` (which may be less, or more) to the current window. */
  settle(reserved: Units, used: Units): void {
    this.roll();
    for (let u = 0; u < this.units; u++) {
      this.reserved[u] = Math.max(0, this.reserved[u]! - reserved[u]!);
      this.spent[u] = Math.max(0, this.spent[u]! + used[u]!);
    }
    this.schedule(HEARTBEAT_MS);
  }

  close(): void {
    this.closed = true;
    this.deps.clock.clearTimer(this.timer);
    this.deps.track?.(this, false);
  }

  private reserve(amount: Units): Admission {
    this.use.add(this.deps.clock.now(), amount);
    for (let u = 0; u < this.units; u++) this.reserved[u]! += amount[u]!;
    // Topped up ahead of need: a sync when the lease falls under half of what this pod's pace calls for.
    if (this.mode === 'shared' && this.round === undefined && this.limits.some((limit, u) => Number.isFinite(limit) && this.available(u) < this.target(u) / 2)) void this.sync();
    this.schedule(HEARTBEAT_MS);
    return { ok: true };
  }

  /** Waits for the next sync (or, the store not connected, to hear from it), at most STORE_DEADLINE_MS. */
  private async await(amount: Units): Promise<Admission> {
    const start = this.start;
    this.waiting = this.waiting.map((w, u) => w + amount[u]!);
    const began = this.deps.clock.now();
    let heard = () => {};
    const answer = this.deps.store()?.ready ? this.sync() : new Promise<void>((resolve) => this.hearing.add((heard = resolve)));
    const outcome = await within(this.deps.clock, STORE_DEADLINE_MS, answer);
    this.hearing.delete(heard);
    this.deps.waited?.(this.deps.clock.now() - began);
    if (this.start === start) this.waiting = this.waiting.map((w, u) => Math.max(0, w - amount[u]!));
    this.roll();
    // Late but connected, the store is slow, not down: no share is handed out for it (the sync goes on; ask again soon).
    if (outcome === 'late' && !this.deps.store()?.ready) this.enterLocalShare();
    if (this.fits(amount)) return this.reserve(amount);
    const over = beyondLeft(amount, this.limits, (u) => this.fleetSpent(u), this.untilRoll());
    if (over) return over;
    // Refused for the store's slowness: the demand still counts in the pace, so the lease grows to cover it.
    if (outcome === 'late' && this.seen) this.use.add(this.deps.clock.now(), amount);
    // What the lease took for this request goes back at once (after the sync in flight, if any).
    this.giveBack = true;
    if (this.round === undefined) this.returnExcess();
    return this.refusal(amount, !this.seen ? 'unheard' : outcome === 'late' ? 'slow' : 'held');
  }

  /** A lease beyond what is in flight, unreported, waiting and this pod's pace: the store is told at once. */
  private returnExcess(): void {
    if (!this.giveBack || this.waiting.some((w) => w > 0)) return;
    this.giveBack = false;
    const excess = this.limits.some((limit, u) => Number.isFinite(limit) && this.held[u]! > Math.ceil(this.reserved[u]! + this.unreported(u)) + Math.floor(this.target(u)));
    if (excess && this.mode === 'shared' && this.deps.store()?.ready) void this.sync();
  }

  private refusal(amount: Units, why: Refused): Admission {
    return refusal(amount, this.limits, (u) => this.available(u), this.untilRoll(), why);
  }

  /** The next sync: the one in flight is followed by one more, which every request waiting meanwhile joins. */
  private sync(): Promise<void> {
    if (this.next) return this.next;
    if (!this.round) return (this.round = this.syncOnce().finally(() => (this.round = undefined)));
    return (this.next = this.round.then(() => ((this.next = undefined), this.sync())));
  }

  private async syncOnce(): Promise<void> {
    const store = this.deps.store();
    const start = this.start;
    const sent = [...this.spent];
    const units = this.limits.map((limit, u) => ({
      limit,
      spent: sent[u]!,
      keep: this.reserved[u]!,
      want: Number.isFinite(limit) ? Math.ceil(this.reserved[u]! + this.waiting[u]!) + Math.floor(this.target(u)) : 0,
      floor: this.seen?.spent[u] ?? 0,
      confirmed: this.reported[u]!,
    }));
    // The store keeps its own deadline; this one holds whatever store it is.
    const asked = store && !this.closed ? store.sync(this.spec.key(start), this.deps.pod, this.spec.windowMs + 2 * STALE_MS, STALE_MS, units) : Promise.reject(new Error('no store'));
    const reply = await within(this.deps.clock, SYNC_DEADLINE_MS, asked).catch(() => 'late' as const);
    if (reply === 'late') {
      // Whether the store took this sync is unknown: hold no more than before and than asked (the next sync says).
      if (this.start === start) this.held = this.held.map((h, u) => Math.min(h, units[u]!.want));
      return this.enterLocalShare();
    }
    if (this.start !== start) return; // a reply of a window gone: the new window's first sync says all
    const backwards = reply.fleetSpent.some((s, u) => s < (this.seen?.spent[u] ?? 0));
    this.reported = sent;
    this.held = reply.held;
    this.seen = { spent: reply.fleetSpent, held: reply.fleetHeld };
    this.mode = 'shared';
    for (const heard of this.hearing) heard();
    this.hearing.clear();
    if (reply.lost || backwards) this.deps.lost?.();
    this.returnExcess();
  }

  /** Stops waiting on the store: this pod spends what it held and its share of what the fleet had left. */
  private enterLocalShare(): void {
    if (this.mode === 'local-share') return;
    this.mode = 'local-share';
    this.shareOut();
    this.schedule(RETRY_MS);
  }

  /** A sync in `ms` (heartbeat, refresh, give-back, retry), unless one is due sooner. */
  private schedule(ms: number): void {
    const due = this.deps.clock.now() + ms;
    if (this.closed || due >= this.due) return;
    this.deps.clock.clearTimer(this.timer);
    this.due = due;
    this.timer = this.deps.clock.setTimer(() => {
      this.due = Infinity;
      this.roll();
      if (this.mode === 'local-share' && !this.deps.store()?.ready) return this.schedule(RETRY_MS);
      const settled = this.spent.every((s, u) => s === this.reported[u]) && this.held.every((h) => h === 0) && this.reserved.every((r) => r === 0);
      // Settled, a rate's counter still says what it spent now and then (a store that restarted empty learns it again); a budget's refreshes.
      if (this.mode === 'shared' && settled && this.spec.refreshMs === undefined && ms < SETTLED_HEARTBEAT_MS) return this.spent.some((s) => s > 0) ? this.schedule(SETTLED_HEARTBEAT_MS) : undefined;
      void this.sync().finally(() => this.schedule(this.mode === 'shared' ? (this.spec.refreshMs ?? HEARTBEAT_MS) : RETRY_MS));
    }, ms);
  }

}
