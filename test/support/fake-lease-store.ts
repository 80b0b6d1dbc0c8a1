/**
 * The lease script (sidecar/fleet/lease-script.ts) as an in-memory store, on
 * a clock, for the lease counter's unit and property tests: the same
 * arithmetic, record by record; and switches that make it go down (fail at
 * once), hang (never answer) or come back, and lose everything (a Redis
 * restarted without persistence).
 */
import type { Clock } from '../../sidecar/resilience/clock.js';
import type { LeaseStore, SyncReply, SyncUnit } from '../../sidecar/fleet/redis-store.js';

interface Counter {
  spent: number[];
  held: number[];
  /** Spent no record accounts for: what floors raised the count by after a loss, taken back as the pods report again. */
  base: number[];
  records: Map<string, { spent: number[]; held: number[]; seen: number }>;
  sweep: number;
}

export class FakeLeaseStore implements LeaseStore {
  state: 'up' | 'down' | 'hang' = 'up';
  /** Up but this far away: each sync answers after this many ms of the clock. */
  delayMs = 0;
  readonly counters = new Map<string, Counter>();
  calls = 0;

  constructor(private readonly clock: Clock) {}

  /** A hanging store looks connected: only its silence tells. */
  get ready(): boolean {
    return this.state !== 'down';
  }

  /** Forgets every count, as a Redis restarted without persistence does. */
  flush(): void {
    this.counters.clear();
  }

  sync(key: string, pod: string, _ttlMs: number, staleMs: number, units: readonly SyncUnit[]): Promise<SyncReply> {
    this.calls++;
    if (this.state === 'down') return Promise.reject(new Error('down'));
    if (this.state === 'hang') return new Promise(() => {});
    if (this.delayMs > 0) return new Promise((resolve) => this.clock.setTimer(() => resolve(this.apply(key, pod, staleMs, units)), this.delayMs));
    return Promise.resolve(this.apply(key, pod, staleMs, units));
  }

  private apply(key: string, pod: string, staleMs: number, units: readonly SyncUnit[]): SyncReply {
    const n = units.length;
    const now = this.clock.wallTime();
    let c = this.counters.get(key);
    if (!c) this.counters.set(key, (c = { spent: new Array(n).fill(0), held: new Array(n).fill(0), base: new Array(n).fill(0), records: new Map(), sweep: 0 }));
    if (now - c.sweep >= staleMs / 2) {
      for (const [other, r] of c.records) {
        if (other === pod || r.seen >= now - staleMs) continue;
        for (let u = 0; u < n; u++) {
          c.held[u]! -= r.held[u]!;
          r.held[u] = 0;
        }
      }
      c.sweep = now;
    }
    const r = c.records.get(pod) ?? { spent: new Array(n).fill(0), held: new Array(n).fill(0), seen: 0 };
    const fresh = !c.records.has(pod);
    const reply: SyncReply = { held: [], fleetSpent: [], fleetHeld: [], lost: false };
    units.forEach(({ limit, spent: mine, keep, want, floor, confirmed }, u) => {
      if (r.spent[u]! < Math.round(confirmed)) reply.lost = true;
      const absorbed = Math.min(c.base[u]!, Math.max(0, Math.round(confirmed) - r.spent[u]!));
      c.base[u]! -= absorbed;
      let spent = c.spent[u]! - absorbed + Math.round(mine) - r.spent[u]!;
      const least = Math.round(floor) + Math.round(mine) - Math.round(confirmed);
      if (spent < least) {
        c.base[u]! += least - spent;
        spent = least;
        reply.lost = true;
      }
      const held = Math.max(0, c.held[u]! - r.held[u]!);
      const kept = fresh ? Math.round(keep) : Math.min(Math.round(keep), r.held[u]!);
      const h = Number.isFinite(limit) ? Math.max(0, Math.min(Math.round(want), limit - spent - held), kept) : Math.round(want);
      c.spent[u] = spent;
      c.held[u] = held + h;
      r.spent[u] = Math.round(mine);
      r.held[u] = h;
      reply.held.push(h);
      reply.fleetSpent.push(spent);
      reply.fleetHeld.push(held + h);
    });
    r.seen = now;
    c.records.set(pod, r);
    return reply;
  }

  heartbeat(): Promise<number> {
    return this.state === 'up' ? Promise.resolve(1) : Promise.reject(new Error(this.state));
  }
}
