/**
 * Breakers that outlive a restart (`--breaker-state`): the open and
 * half-open ones, with their open time left and re-open count, written
 * beside the last good config
 * (atomically: a temporary file renamed over the old one) and read back at
 * start-up, so a restarted sidecar does not send a burst at an upstream it
 * knew to be down. Times are kept as wall-clock instants, since a restart
 * resets the process's monotonic clock. The file is bounded, and ignored
 * when it is unreadable, corrupt, written under another policy version, or
 * more than 10 minutes old. An open breaker whose time ran out while the
 * sidecar was down comes back half-open: it is probed, not flooded.
 */
import { readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import type { Logger } from 'pino';
import type { Clock, SavedBreakerState } from './resilience/index.js';
import type { SidecarState } from './sidecar-state.js';

/** A burst of transitions is written once, this soon after the first: soon enough to survive a kill. */
const SAVE_AFTER_MS = 100;
/** At most this many breakers are kept (the most an upstream pins, see upstream-state.ts). */
const MAX_SAVED = 4096;
/** A file larger than this is not read. */
const MAX_FILE_BYTES = 2 << 20;
/** State saved longer ago than this says nothing about the upstream now. */
const MAX_AGE_MS = 10 * 60_000;
/** Longer names than these are not from this sidecar. */
const MAX_NAME_CHARS = 320;

export interface SavedBreaker extends SavedBreakerState {
  upstream: string;
  /** The breaker's scope key within its upstream ("*", a model, with "@endpoint" when there are several). */
  scope: string;
}

interface StoredBreaker {
  upstream: string;
  scope: string;
  state: 'open' | 'half-open';
  /** Wall-clock time the open state ends (ms since the epoch). */
  until: number;
  reopenings: number;
}

function isStored(value: unknown): value is StoredBreaker {
  const b = value as Partial<StoredBreaker>;
  return (
    typeof b === 'object' &&
    b !== null &&
    typeof b.upstream === 'string' &&
    b.upstream.length <= MAX_NAME_CHARS &&
    typeof b.scope === 'string' &&
    b.scope.length <= MAX_NAME_CHARS &&
    (b.state === 'open' || b.state === 'half-open') &&
    Number.isFinite(b.until) &&
    Number.isInteger(b.reopenings) &&
    b.reopenings! >= 0 &&
    b.reopenings! <= 64
  );
}

export class BreakerStore {
  constructor(
    private readonly file: string,
    private readonly log: Logger,
    private readonly wallNow: () => number = Date.now,
  ) {}

  /** Replaces the file with these breakers, saved under `configHash`. Never throws: a failed write is logged. */
  save(configHash: string, breakers: SavedBreaker[]): void {
    const now = this.wallNow();
    const stored: StoredBreaker[] = breakers.slice(0, MAX_SAVED).map((b) => ({ upstream: b.upstream, scope: b.scope, state: b.state, until: now + b.remainingMs, reopenings: b.reopenings }));
    try {
      writeFileSync(`${this.file}.tmp`, JSON.stringify({ config: configHash, savedAt: now, breakers: stored }));
      renameSync(`${this.file}.tmp`, this.file);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'could not save breaker state');
    }
  }

  /** The breakers saved under `configHash`, with their open time left now; none when the file is missing or not to be trusted. */
  load(configHash: string): SavedBreaker[] {
    let text: string;
    try {
      if (statSync(this.file).size > MAX_FILE_BYTES) throw new Error(`larger than ${MAX_FILE_BYTES} bytes`);
      text = readFileSync(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.log.warn({ err: (err as Error).message }, 'ignoring unreadable breaker state');
      return [];
    }
    let parsed: { config?: unknown; savedAt?: unknown; breakers?: unknown };
    try {
      parsed = JSON.parse(text) as typeof parsed;
    } catch {
      this.log.warn('ignoring corrupt breaker state');
      return [];
    }
    if (parsed?.config !== configHash || !Array.isArray(parsed.breakers)) {
      this.log.info('breaker state was saved under another policy version; starting with closed breakers');
      return [];
    }
    const now = this.wallNow();
    if (typeof parsed.savedAt !== 'number' || !(now - parsed.savedAt <= MAX_AGE_MS)) {
      this.log.info('breaker state is older than 10 minutes; starting with closed breakers');
      return [];
    }
    return parsed.breakers
      .slice(0, MAX_SAVED)
      .filter(isStored)
      .map((b) => ({ upstream: b.upstream, scope: b.scope, state: b.state, remainingMs: Math.max(0, b.until - now), reopenings: b.reopenings }));
  }
}

/**
 * The breakers of the sidecar's state kept in `file`: saved shortly after any
 * transition (`changed`) and at the end of a drain (`saveNow`); restored once,
 * when the first config is in force (`restore`).
 */
export function keepBreakers(file: string, log: Logger, clock: Clock, state: () => SidecarState) {
  const store = new BreakerStore(file, log, () => clock.wallTime());
  let restored = false;
  let timer: unknown;
  const saveNow = () => {
    clock.clearTimer(timer);
    timer = undefined;
    const config = state().config;
    if (!config) return;
    const kept: SavedBreaker[] = [];
    for (const upstream of state().live()) {
      for (const [scope, breaker] of upstream.breakerEntries()) {
        const saved = breaker.saved();
        if (saved) kept.push({ upstream: upstream.name, scope, ...saved });
      }
    }
    store.save(config.version.hash, kept);
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
      for (const saved of store.load(config.version.hash)) state().upstream(saved.upstream)?.breakerAt(saved.scope).restore(saved);
    },
  };
}
