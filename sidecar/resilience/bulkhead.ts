/**
 * A bulkhead with priority classes: at most `limit` calls in flight, up to
 * `maxQueue` waiting. The limit is `maxConcurrent` unless an adaptive limit
 * moves it (`setLimit`, adaptive-limit.ts); a lower limit takes no slot back,
 * it only admits no one until the calls in flight are under it. Classes are
 * ordered most important first; a class may have slots reserved for it
 * (others cannot take them) and a cap on the share of slots it may hold, both
 * as percentages of the limit now. Freed slots go to the most important class
 * with a waiter that may take one; within a class, waiters are let in fairly
 * between callers by their cost in tokens (fair-queue.ts), first come first
 * served when there is one caller. When the queue is full, a more important
 * arrival evicts the newest waiter of the least important class.
 */
import type { AbortWatch } from './abort-flag.js';
import type { Clock } from './clock.js';
import { FairQueue, type FairEntry } from './fair-queue.js';

export interface PriorityClass {
  name: string;
  reservedPercent: number;
  maxSharePercent: number;
}

export interface BulkheadSettings {
  maxConcurrent: number;
  maxQueue: number;
  queueTimeoutMs: number;
}

export type BulkheadRejectionReason = 'queue-full' | 'queue-timeout' | 'evicted' | 'aborted';

export class BulkheadRejection extends Error {
  constructor(readonly reason: BulkheadRejectionReason) {
    super(`bulkhead rejected the request: ${reason}`);
  }
}

interface Waiter {
  admit: () => void;
  reject: (reason: BulkheadRejectionReason) => void;
}

/** Who waits and what a wait costs, for fairness within a class (one caller and cost 1 without `fairBy`). */
export interface Claim {
  caller: string;
  cost: number;
}

const ANYONE: Claim = { caller: '', cost: 1 };

export class Bulkhead {
  private inFlight = 0;
  private readonly inFlightByClass: number[];
  private readonly queues: FairQueue<Waiter>[];
  private queued = 0;
  private max: number;
  private reserved: number[] = [];
  private shareLimit: number[] = [];

  constructor(
    private readonly settings: BulkheadSettings,
    readonly classes: readonly PriorityClass[],
    private readonly clock: Clock,
    /** Distinct callers each class tells apart (past it they share one bucket). */
    maxCallers = 64,
  ) {
    this.max = settings.maxConcurrent;
    this.inFlightByClass = classes.map(() => 0);
    this.queues = classes.map(() => new FairQueue<Waiter>(maxCallers));
    this.shares();
  }

  get active(): number {
    return this.inFlight;
  }

  get waiting(): number {
    return this.queued;
  }

  /** Calls let in flight at once now. */
  get limit(): number {
    return this.max;
  }

  /** Moves the limit (an adaptive limit learnt it); a higher one lets waiters in at once. */
  setLimit(limit: number): void {
    if (limit === this.max) return;
    this.max = limit;
    this.shares();
    this.admitWaiters();
  }

  /**
   * Takes a slot now if one is free for this class (class by index, most important = 0)
   * and no waiter of this or a more important class is ahead of it. `claim` is charged to its caller.
   */
  tryAcquire(classIndex: number, claim?: Claim): boolean {
    for (let c = 0; c <= classIndex; c++) if (this.queues[c]!.length > 0) return false;
    if (!this.canAdmit(classIndex)) return false;
    if (claim) this.queues[classIndex]!.charge(claim.caller, claim.cost);
    this.take(classIndex);
    return true;
  }

  /** Waits for a slot; rejects with a BulkheadRejection when the queue is full, the wait times out, or `signal` aborts. */
  acquire(classIndex: number, signal?: AbortWatch, claim?: Claim): Promise<void> {
    if (this.tryAcquire(classIndex, claim)) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(new BulkheadRejection('aborted'));
      if (this.queued >= this.settings.maxQueue && !this.evictFor(classIndex)) {
        return reject(new BulkheadRejection('queue-full'));
      }
      const queue = this.queues[classIndex]!;
      const { caller, cost } = claim ?? ANYONE;
      // Tagged once the waiter exists below; leave() runs only after that.
      let entry: FairEntry<Waiter>;
      const leave = (served: boolean) => {
        this.clock.clearTimer(timer);
        signal?.removeEventListener('abort', onAbort);
        if (served ? queue.serve(entry) : queue.remove(entry)) this.queued--;
      };
      const waiter: Waiter = {
        admit: () => {
          leave(true);
          this.take(classIndex);
          resolve();
        },
        reject: (reason) => {
          leave(false);
          reject(new BulkheadRejection(reason));
        },
      };
      const onAbort = () => waiter.reject('aborted');
      const timer = this.clock.setTimer(() => waiter.reject('queue-timeout'), this.settings.queueTimeoutMs);
      signal?.addEventListener('abort', onAbort, { once: true });
      entry = queue.push(caller, cost, waiter);
      this.queued++;
    });
  }

  /**
   * The largest limit (up to this one, or one past it when even this one lets no more in) at which no more than
   * `calls` would be in flight now, class `classIndex` taking all it may: what an adaptive limit learns from a
   * provider that held `calls` (slots reserved for idle classes kept, as they are at any limit).
   */
  limitFor(classIndex: number, calls: number): number {
    if (this.canHold(classIndex, this.max) < calls) return this.max + 1;
    let [lo, hi] = [0, this.max];
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      if (this.canHold(classIndex, mid) <= calls) lo = mid;
      else hi = mid - 1;
    }
    return Math.max(1, lo);
  }

  /** Calls in flight at limit `max` once class `c` took every slot it may (the others as they are). */
  private canHold(c: number, max: number): number {
    let others = 0;
    let heldForOthers = 0;
    for (let k = 0; k < this.classes.length; k++) {
      if (k === c) continue;
      others += this.inFlightByClass[k]!;
      heldForOthers += Math.max(0, Math.floor((max * this.classes[k]!.reservedPercent) / 100) - this.inFlightByClass[k]!);
    }
    const share = Math.max(1, Math.floor((max * this.classes[c]!.maxSharePercent) / 100));
    return others + Math.max(0, Math.min(share, max - heldForOthers - others));
  }

  /** Gives a slot back and hands freed slots to waiters, most important first. */
  release(classIndex: number): void {
    this.inFlight--;
    this.inFlightByClass[classIndex]!--;
    this.admitWaiters();
  }

  private admitWaiters(): void {
    for (let c = 0; c < this.queues.length && this.queued > 0; c++) {
      const queue = this.queues[c]!;
      while (queue.length > 0 && this.canAdmit(c)) queue.peek()!.item.admit();
    }
  }

  private shares(): void {
    const max = this.max;
    this.reserved = this.classes.map((c) => Math.floor((max * c.reservedPercent) / 100));
    this.shareLimit = this.classes.map((c) => Math.max(1, Math.floor((max * c.maxSharePercent) / 100)));
  }

  private take(classIndex: number): void {
    this.inFlight++;
    this.inFlightByClass[classIndex]!++;
  }

  private canAdmit(c: number): boolean {
    if (this.inFlight >= this.max) return false;
    if (this.inFlightByClass[c]! >= this.shareLimit[c]!) return false;
    let heldForOthers = 0;
    for (let k = 0; k < this.reserved.length; k++) {
      if (k !== c) heldForOthers += Math.max(0, this.reserved[k]! - this.inFlightByClass[k]!);
    }
    return this.inFlight + 1 + heldForOthers <= this.max;
  }

  /** Makes room for a class more important than the least important waiter; false if there is none. */
  private evictFor(classIndex: number): boolean {
    for (let c = this.queues.length - 1; c > classIndex; c--) {
      const newest = this.queues[c]!.newest();
      if (newest) {
        newest.item.reject('evicted');
        return true;
      }
    }
    return false;
  }
}
