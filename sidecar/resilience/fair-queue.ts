/**
 * A queue that is fair between callers by cost (tokens): start-time fair
 * queuing (Goyal et al., 1996). Each entry is tagged on arrival with a start,
 * the later of the queue's virtual time and its caller's last finish, and a
 * finish, its start plus its cost; the entry with the least start leaves
 * first, and the virtual time moves to it. A caller that sends ten times the
 * tokens of another is let through a tenth as often while both wait, whatever
 * order they arrived in; one caller alone is served first come, first served;
 * and a caller that was idle gets no credit for it (its start is at least the
 * virtual time). While two callers stay backlogged, the tokens let through
 * for each differ by at most the sum of their largest costs.
 *
 * Admissions that never waited are charged too (`charge`), so a caller that
 * takes every free slot starts behind once the queue forms. Distinct callers
 * are capped: past `maxCallers`, new ones share one bucket. A cost counts up
 * to MAX_COST (and one that is not a number, as that): a caller's
 * `max_tokens: 1e22` would otherwise carry the virtual time where adding a
 * prompt's tokens changes nothing, every start ties, and the queue is first
 * come, first served for everyone from then on.
 */

/** The most a single entry costs: 2^21 tokens (past any model's context), so the virtual time stays exact for 2^32 entries. */
export const MAX_COST = 2 ** 21;
const bounded = (cost: number) => (cost >= 0 ? Math.min(cost, MAX_COST) : cost < 0 ? 0 : MAX_COST);

/** The bucket callers share past the cap. */
export const OVERFLOW_CALLER = '\u0000overflow';

export interface FairEntry<T> {
  readonly item: T;
  readonly caller: string;
  readonly start: number;
  /** Arrival order, for ties and for the newest entry. */
  readonly seq: number;
}

interface Caller<T> {
  finish: number;
  entries: FairEntry<T>[];
}

export class FairQueue<T> {
  private readonly callers = new Map<string, Caller<T>>();
  private virtual = 0;
  private count = 0;
  private seq = 0;

  constructor(private readonly maxCallers = 64) {}

  get length(): number {
    return this.count;
  }

  /** Tags an admission made at once (no wait), so the caller's share counts it. */
  charge(caller: string, cost: number): void {
    const state = this.callerOf(this.keyOf(caller));
    const start = Math.max(this.virtual, state.finish);
    state.finish = start + bounded(cost);
    this.virtual = start;
    this.prune();
  }

  push(caller: string, cost: number, item: T): FairEntry<T> {
    const key = this.keyOf(caller);
    const state = this.callerOf(key);
    const start = Math.max(this.virtual, state.finish);
    state.finish = start + bounded(cost);
    const entry: FairEntry<T> = { item, caller: key, start, seq: this.seq++ };
    state.entries.push(entry);
    this.count++;
    return entry;
  }

  /** The entry that leaves next: the least start tag (then the earliest arrival). */
  peek(): FairEntry<T> | undefined {
    let best: FairEntry<T> | undefined;
    for (const { entries } of this.callers.values()) {
      const head = entries[0];
      if (head && (!best || head.start < best.start || (head.start === best.start && head.seq < best.seq))) best = head;
    }
    return best;
  }

  /** Takes `entry` out as served (the virtual time moves to its start); false if it is not queued. */
  serve(entry: FairEntry<T>): boolean {
    if (!this.remove(entry)) return false;
    this.virtual = Math.max(this.virtual, entry.start);
    this.prune();
    return true;
  }

  /** Takes `entry` out unserved (it timed out, left or was evicted); false if it is not queued. */
  remove(entry: FairEntry<T>): boolean {
    const entries = this.callers.get(entry.caller)?.entries;
    const at = entries ? entries.indexOf(entry) : -1;
    if (at < 0) return false;
    entries!.splice(at, 1);
    this.count--;
    return true;
  }

  /** The entry that arrived last, if any. */
  newest(): FairEntry<T> | undefined {
    let newest: FairEntry<T> | undefined;
    for (const { entries } of this.callers.values()) {
      const tail = entries[entries.length - 1];
      if (tail && (!newest || tail.seq > newest.seq)) newest = tail;
    }
    return newest;
  }

  /** Callers remembered now (at most the cap, plus the overflow bucket). */
  get callerCount(): number {
    return this.callers.size;
  }

  private keyOf(caller: string): string {
    if (this.callers.has(caller)) return caller;
    if (this.callers.size >= this.maxCallers) this.prune();
    return this.callers.size < this.maxCallers ? caller : OVERFLOW_CALLER;
  }

  private callerOf(key: string): Caller<T> {
    let state = this.callers.get(key);
    if (!state) this.callers.set(key, (state = { finish: 0, entries: [] }));
    return state;
  }

  /** Forgets callers with nothing queued and no finish ahead of the virtual time: they would start at it anyway. */
  private prune(): void {
    if (this.callers.size < this.maxCallers / 2) return;
    for (const [key, state] of this.callers) if (state.entries.length === 0 && state.finish <= this.virtual) this.callers.delete(key);
  }
}
