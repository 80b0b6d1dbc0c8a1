/**
 * The circuit breaker: a closed → open → half-open state machine. When to
 * trip is not its business: it asks its TripRules (trip-rules.ts:
 * consecutive failures, failure rate and slow-call rate over a window).
 *
 * The request path asks `tryAcquire()` before an attempt and reports the
 * outcome with `record()` (or `release()` when there is none to report, e.g.
 * the app went away). Outcomes of calls admitted before the last transition
 * are ignored, so a slow call from a closed period cannot re-open a breaker
 * that has since recovered.
 */
import type { Clock } from './clock.js';
import { TripRules, type CallOutcome, type TripSettings } from './trip-rules.js';

export type { CallOutcome } from './trip-rules.js';

export interface BreakerSettings extends TripSettings {
  openForMs: number;
  maxOpenForMs: number;
  halfOpen: { maxProbes: number; successesToClose: number };
}

export type BreakerStateName = 'closed' | 'open' | 'half-open';

export interface SavedBreakerState {
  state: 'open' | 'half-open';
  remainingMs: number;
  reopenings: number;
  /** When it opened, by the wall clock (ms since the epoch): the opening it reports stays the same one across a restart. */
  openedAt?: number;
}

type State =
  | { name: 'closed' }
  | { name: 'open'; until: number }
  | { name: 'half-open'; probes: number; successes: number };

export interface BreakerPermit {
  readonly generation: number;
}

export type Admission = { ok: true; permit: BreakerPermit } | { ok: false; retryAfterMs: number };

export type TransitionListener = (from: BreakerStateName, to: BreakerStateName, reason: string) => void;

/** While half-open with every probe slot taken, callers are told to come back after this long. */
const HALF_OPEN_RETRY_AFTER_MS = 1000;

export class CircuitBreaker {
  private state: State = { name: 'closed' };
  private generation = 0;
  /** How many times in a row the breaker opened without closing in between (drives the doubling). */
  private reopenings = 0;
  /** Wall-clock time of the last opening, while open or half-open. */
  private opening: number | undefined;
  private readonly rules: TripRules;

  constructor(
    private readonly settings: BreakerSettings,
    private readonly clock: Clock,
    private readonly onTransition: TransitionListener = () => {},
  ) {
    this.rules = new TripRules(settings, clock);
  }

  /** The state now (an expired open state reads as half-open). */
  get stateName(): BreakerStateName {
    if (this.state.name === 'open' && this.clock.now() >= this.state.until) return 'half-open';
    return this.state.name;
  }

  /**
   * When the breaker last opened, by the wall clock (ms since the epoch), while it is open or half-open;
   * undefined when closed. With the breaker, it names one opening (the controller records each once).
   */
  get openedAt(): number | undefined {
    return this.opening;
  }

  /** Milliseconds until an open breaker lets a probe through (0 otherwise). */
  get remainingOpenMs(): number {
    return this.state.name === 'open' ? Math.max(0, this.state.until - this.clock.now()) : 0;
  }

  tryAcquire(): Admission {
    const state = this.state;
    if (state.name === 'closed') return { ok: true, permit: { generation: this.generation } };
    if (state.name === 'open') {
      const now = this.clock.now();
      if (now < state.until) return { ok: false, retryAfterMs: state.until - now };
      this.moveTo({ name: 'half-open', probes: 0, successes: 0 }, 'open time elapsed');
    }
    const halfOpen = this.state as Extract<State, { name: 'half-open' }>;
    if (halfOpen.probes >= this.settings.halfOpen.maxProbes) return { ok: false, retryAfterMs: HALF_OPEN_RETRY_AFTER_MS };
    halfOpen.probes++;
    return { ok: true, permit: { generation: this.generation } };
  }

  record(permit: BreakerPermit, outcome: CallOutcome): void {
    if (permit.generation !== this.generation) return;
    const state = this.state;
    if (state.name === 'half-open') {
      state.probes--;
      if (outcome.failure) return this.open('probe failed');
      if (++state.successes >= this.settings.halfOpen.successesToClose) this.close();
      return;
    }
    if (state.name !== 'closed') return;
    const reason = this.rules.record(outcome);
    if (reason) this.open(reason);
  }

  /** Gives back a permit whose call has no outcome to report (e.g. cancelled by the app). */
  release(permit: BreakerPermit): void {
    if (permit.generation === this.generation && this.state.name === 'half-open') this.state.probes--;
  }

  /** What must outlive a restart: an open or half-open state, the open time left, and the re-open count. */
  saved(): SavedBreakerState | undefined {
    const name = this.stateName;
    if (name === 'closed') return undefined;
    return { state: name, remainingMs: this.remainingOpenMs, reopenings: this.reopenings, ...(this.opening === undefined ? {} : { openedAt: this.opening }) };
  }

  /** Puts a closed breaker back in a saved state (after a restart); one with a state of its own keeps it. */
  restore(saved: SavedBreakerState): void {
    if (this.state.name !== 'closed') return;
    this.reopenings = saved.reopenings;
    this.opening = saved.openedAt ?? this.clock.wallTime();
    if (saved.state === 'open' && saved.remainingMs > 0) this.moveTo({ name: 'open', until: this.clock.now() + saved.remainingMs }, 'restored after a restart');
    else this.moveTo({ name: 'half-open', probes: 0, successes: 0 }, 'restored after a restart');
  }

  /** Closes the breaker and forgets its history (admin reset). */
  reset(): void {
    this.reopenings = 0;
    if (this.state.name !== 'closed') this.close('reset');
  }

  private open(reason: string): void {
    const { openForMs, maxOpenForMs } = this.settings;
    const duration = Math.min(maxOpenForMs, openForMs * 2 ** this.reopenings);
    this.reopenings++;
    this.opening = this.clock.wallTime();
    this.moveTo({ name: 'open', until: this.clock.now() + duration }, reason);
  }

  private close(reason = 'probes succeeded'): void {
    this.reopenings = 0;
    this.opening = undefined;
    this.rules.clear();
    this.moveTo({ name: 'closed' }, reason);
  }

  private moveTo(next: State, reason: string): void {
    const from = this.state.name;
    this.state = next;
    this.generation++;
    this.onTransition(from, next.name, reason);
  }
}
