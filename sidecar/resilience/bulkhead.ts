/**
 * A bulkhead with priority classes: at most `maxConcurrent` calls in flight,
 * up to `maxQueue` waiting. Classes are ordered most important first; a class
 * may have slots reserved for it (others cannot take them) and a cap on the
 * share of slots it may hold. Freed slots go to the most important waiter that
 * may take one; when the queue is full, a more important arrival evicts the
 * newest waiter of the least important class.
 */
import type { Clock } from './clock.js';

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

export class Bulkhead {
  private inFlight = 0;
  private readonly inFlightByClass: number[];
  private readonly queues: Waiter[][];
  private queued = 0;
  private readonly reserved: number[];
  private readonly shareLimit: number[];

  constructor(
    private readonly settings: BulkheadSettings,
    readonly classes: readonly PriorityClass[],
    private readonly clock: Clock,
  ) {
    const max = settings.maxConcurrent;
    this.reserved = classes.map((c) => Math.floor((max * c.reservedPercent) / 100));
    this.shareLimit = classes.map((c) => Math.max(1, Math.floor((max * c.maxSharePercent) / 100)));
    this.inFlightByClass = classes.map(() => 0);
    this.queues = classes.map(() => []);
  }

  get active(): number {
    return this.inFlight;
  }

  get waiting(): number {
    return this.queued;
  }

  /**
   * Takes a slot now if one is free for this class (class by index, most important = 0)
   * and no waiter of this or a more important class is ahead of it.
   */
  tryAcquire(classIndex: number): boolean {
    for (let c = 0; c <= classIndex; c++) if (this.queues[c]!.length > 0) return false;
    if (!this.canAdmit(classIndex)) return false;
    this.take(classIndex);
    return true;
  }

  /** Waits for a slot; rejects with a BulkheadRejection when the queue is full, the wait times out, or `signal` aborts. */
  acquire(classIndex: number, signal?: AbortSignal): Promise<void> {
    if (this.tryAcquire(classIndex)) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(new BulkheadRejection('aborted'));
      if (this.queued >= this.settings.maxQueue && !this.evictFor(classIndex)) {
        return reject(new BulkheadRejection('queue-full'));
      }
      const queue = this.queues[classIndex]!;
      const leave = () => {
        this.clock.clearTimer(timer);
        signal?.removeEventListener('abort', onAbort);
        const at = queue.indexOf(waiter);
        if (at >= 0) {
          queue.splice(at, 1);
          this.queued--;
        }
      };
      const waiter: Waiter = {
        admit: () => {
          leave();
          this.take(classIndex);
          resolve();
        },
        reject: (reason) => {
          leave();
          reject(new BulkheadRejection(reason));
        },
      };
      const onAbort = () => waiter.reject('aborted');
      const timer = this.clock.setTimer(() => waiter.reject('queue-timeout'), this.settings.queueTimeoutMs);
      signal?.addEventListener('abort', onAbort, { once: true });
      queue.push(waiter);
      this.queued++;
    });
  }

  /** Gives a slot back and hands freed slots to waiters, most important first. */
  release(classIndex: number): void {
    this.inFlight--;
    this.inFlightByClass[classIndex]!--;
    for (let c = 0; c < this.queues.length && this.queued > 0; c++) {
      const queue = this.queues[c]!;
      while (queue.length > 0 && this.canAdmit(c)) queue[0]!.admit();
    }
  }

  private take(classIndex: number): void {
    this.inFlight++;
    this.inFlightByClass[classIndex]!++;
  }

  private canAdmit(c: number): boolean {
    if (this.inFlight >= this.settings.maxConcurrent) return false;
    if (this.inFlightByClass[c]! >= this.shareLimit[c]!) return false;
    let heldForOthers = 0;
    for (let k = 0; k < this.reserved.length; k++) {
      if (k !== c) heldForOthers += Math.max(0, this.reserved[k]! - this.inFlightByClass[k]!);
    }
    return this.inFlight + 1 + heldForOthers <= this.settings.maxConcurrent;
  }

  /** Makes room for a class more important than the least important waiter; false if there is none. */
  private evictFor(classIndex: number): boolean {
    for (let c = this.queues.length - 1; c > classIndex; c--) {
      const queue = this.queues[c]!;
      if (queue.length > 0) {
        queue[queue.length - 1]!.reject('evicted');
        return true;
      }
    }
    return false;
  }
}
