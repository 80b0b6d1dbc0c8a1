/**
 * State that outlives a restart (`--state-file`), written beside the last
 * good config (atomically: a temporary file renamed over the old one) and
 * read back at start-up:
 * - open and half-open breakers, with their open time left and re-open
 *   count, so a restarted sidecar does not send a burst at an upstream it
 *   knew to be down. They are trusted only from the same policy version and
 *   for 10 minutes; an open breaker whose time ran out while the sidecar was
 *   down comes back half-open: it is probed, not flooded.
 * - what the token and cost budgets spent in their current window, so a
 *   restart never gives a spent budget back. They are trusted across policy
 *   versions (editing a policy does not refill it) and only within the window.
 *   A fleet budget keeps the fleet's spent as the shared store last told it
 *   (the restarted pod's local share and floor: fleet/) and what of its own
 *   the store had not confirmed (reported again after the restart).
 * Times are kept as wall-clock instants, since a restart resets the process's
 * monotonic clock. The file is bounded, and ignored when unreadable or corrupt;
 * it is read and written as kept-file.ts does (only a regular file, never
 * blocking), so whatever sits at the path, the sidecar starts.
 */
import type { Logger } from 'pino';
import { KeptFileRefused, readKeptFile, writeKeptFile } from './kept-file.js';
import type { BudgetScope } from './budget-book.js';
import type { Clock, SavedBreakerState, SavedBudget, Spend } from './resilience/index.js';
import type { SidecarState } from './sidecar-state.js';

/** A burst of changes is written once, this soon after the first: soon enough to survive a kill. */
const SAVE_AFTER_MS = 100;
/** At most this many breakers are kept (the most an upstream pins, see proxy/upstream/upstream-state.ts). */
const MAX_SAVED = 4096;
/** At most this many budgets: the policy's and one per upstream (at most 32). */
const MAX_BUDGETS = 33;
/** A file larger than this is not read. */
const MAX_FILE_BYTES = 2 << 20;
/** Breaker state saved longer ago than this says nothing about the upstream now. */
const MAX_BREAKER_AGE_MS = 10 * 60_000;
/** Longer names than these are not from this sidecar. */
const MAX_NAME_CHARS = 320;

export interface SavedBreaker extends SavedBreakerState {
  upstream: string;
  /** The breaker's scope key within its upstream ("*", a model, with "@endpoint" when there are several). */
  scope: string;
}

export type KeptBudgetState = BudgetScope & SavedBudget;

export interface KeptState {
  breakers: SavedBreaker[];
  budgets: KeptBudgetState[];
}

interface StoredBreaker {
  upstream: string;
  scope: string;
  state: 'open' | 'half-open';
  /** Wall-clock time the open state ends (ms since the epoch). */
  until: number;
  reopenings: number;
  /** Wall-clock time it opened (absent from files older than this field). */
  openedAt?: number;
}

const isName = (v: unknown): v is string => typeof v === 'string' && v.length <= MAX_NAME_CHARS;
const isAmount = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0;
const isSpendOrNone = (v: unknown) => v === undefined || (typeof v === 'object' && v !== null && isAmount((v as Spend).tokens) && isAmount((v as Spend).cost));

function isStoredBreaker(value: unknown): value is StoredBreaker {
  const b = value as Partial<StoredBreaker>;
  return (
    typeof b === 'object' &&
    b !== null &&
    isName(b.upstream) &&
    isName(b.scope) &&
    (b.state === 'open' || b.state === 'half-open') &&
    Number.isFinite(b.until) &&
    Number.isInteger(b.reopenings) &&
    b.reopenings! >= 0 &&
    b.reopenings! <= 64 &&
    (b.openedAt === undefined || (Number.isSafeInteger(b.openedAt) && b.openedAt >= 0))
  );
}

function isStoredBudget(value: unknown): value is KeptBudgetState {
  const b = value as Partial<KeptBudgetState>;
  return (
    typeof b === 'object' &&
    b !== null &&
    (b.scope === 'policy' || (b.scope === 'upstream' && isName(b.upstream))) &&
    isAmount(b.windowStart) &&
    isAmount(b.tokens) &&
    isAmount(b.cost) &&
    isSpendOrNone(b.fleetSpent) &&
    isSpendOrNone(b.unreported)
  );
}

const NOTHING: KeptState = { breakers: [], budgets: [] };

export class StateFile {
  constructor(
    private readonly file: string,
    private readonly log: Logger,
    private readonly wallNow: () => number = Date.now,
  ) {}

  /** Replaces the file with this state, saved under `configHash`. Never throws: a failed write is logged. */
  save(configHash: string, state: KeptState): void {
    const now = this.wallNow();
    const breakers: StoredBreaker[] = state.breakers.slice(0, MAX_SAVED).map((b) => ({ upstream: b.upstream, scope: b.scope, state: b.state, until: now + b.remainingMs, reopenings: b.reopenings, openedAt: b.openedAt }));
    try {
      writeKeptFile(this.file, JSON.stringify({ config: configHash, savedAt: now, breakers, budgets: state.budgets.slice(0, MAX_BUDGETS) }));
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'could not save the sidecar\'s kept state');
    }
  }

  /**
   * What was saved that is still to be trusted: breakers saved under `configHash` in the last
   * 10 minutes, with their open time left now, and budgets; nothing when the file is missing or corrupt.
   */
  load(configHash: string): KeptState {
    let text: string;
    try {
      text = readKeptFile(this.file, MAX_FILE_BYTES);
    } catch (err) {
      if (err instanceof KeptFileRefused) this.log.warn({ file: this.file }, `ignoring the kept state: ${err.message}`);
      else if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.log.warn({ file: this.file, err: (err as Error).message }, 'ignoring the unreadable kept state');
      return NOTHING;
    }
    let parsed: { config?: unknown; savedAt?: unknown; breakers?: unknown; budgets?: unknown };
    try {
      parsed = JSON.parse(text) as typeof parsed;
    } catch {
      this.log.warn('ignoring the corrupt kept state');
      return NOTHING;
    }
    if (typeof parsed !== 'object' || parsed === null) return NOTHING;
    const budgets = Array.isArray(parsed.budgets) ? parsed.budgets.slice(0, MAX_BUDGETS).filter(isStoredBudget) : [];
    if (parsed.config !== configHash || !Array.isArray(parsed.breakers)) {
      this.log.info('breaker state was saved under another policy version; starting with closed breakers');
      return { breakers: [], budgets };
    }
    const now = this.wallNow();
    if (typeof parsed.savedAt !== 'number' || !(now - parsed.savedAt <= MAX_BREAKER_AGE_MS)) {
      this.log.info('breaker state is older than 10 minutes; starting with closed breakers');
      return { breakers: [], budgets };
    }
    const breakers = parsed.breakers
      .slice(0, MAX_SAVED)
      .filter(isStoredBreaker)
      .map((b) => ({ upstream: b.upstream, scope: b.scope, state: b.state, remainingMs: Math.max(0, b.until - now), reopenings: b.reopenings, ...(b.openedAt === undefined ? {} : { openedAt: b.openedAt }) }));
    return { breakers, budgets };
  }
}

/**
 * The breakers and budgets of the sidecar's state kept in `file`: saved
 * shortly after any change (`changed`) and at the end of a drain
 * (`saveNow`); restored once, when the first config is in force (`restore`).
 */
export function keepState(file: string, log: Logger, clock: Clock, state: () => SidecarState) {
  const store = new StateFile(file, log, () => clock.wallTime());
  let restored = false;
  let timer: unknown;
  const saveNow = () => {
    clock.clearTimer(timer);
    timer = undefined;
    const config = state().config;
    if (!config) return;
    const breakers: SavedBreaker[] = [];
    for (const upstream of state().live()) {
      for (const [scope, breaker] of upstream.breakerEntries()) {
        const saved = breaker.saved();
        if (saved) breakers.push({ upstream: upstream.name, scope, ...saved });
      }
    }
    const budgets = [...state().budgets.all()].map(({ scope, upstream, budget }) => ({ scope, ...(upstream === undefined ? {} : { upstream }), ...budget.saved() }));
    store.save(config.version.hash, { breakers, budgets });
  };
  return {
    saveNow,
    changed() {
      timer ??= clock.setTimer(saveNow, SAVE_AFTER_MS);
    },
    restore() {
      const config = state().config;
      if (restored || !config) return;
      restored = true;
      const kept = store.load(config.version.hash);
      for (const saved of kept.breakers) state().upstream(saved.upstream)?.breakerAt(saved.scope).restore(saved);
      for (const saved of kept.budgets) state().budgets.get(saved)?.restore(saved);
    },
  };
}
