/**
 * A token and cost budget over a window of the wall clock: each clock hour,
 * or each UTC day. A request reserves what it may use before it is sent and
 * is refused when that would take spending past a limit; once its answer is
 * in, the reservation is settled with what it used. When the window rolls,
 * spending starts again from zero (reservations in flight carry over).
 */
import type { Clock } from './clock.js';

export interface BudgetLimits {
  window: 'hour' | 'day';
  /** Tokens per window (0 = no limit). */
  tokens: number;
  /** Cost per window, in the prices' currency (0 = no limit). */
  cost: number;
}

export interface Spend {
  tokens: number;
  cost: number;
}

/** What a budget keeps across a restart: the window it was spending in, and what it spent there. */
export interface SavedBudget extends Spend {
  /** Wall-clock start of the window (ms since the epoch). */
  windowStart: number;
  /** A fleet budget's: the fleet's spent as the shared store last told it, and what of this pod's the store had not confirmed. */
  fleetSpent?: Spend;
  unreported?: Spend;
}

/**
 * Why a fleet budget's reservation was refused (a pod's says none: spent): the budget is spent; the request asks
 * for more than it has left; the rest is held by requests in flight or leases elsewhere; the shared store did not
 * answer in time; or it has not yet answered this sidecar.
 */
export type BudgetRefused = 'spent' | 'too-large' | 'held' | 'slow' | 'unheard';

export type BudgetAdmission = { ok: true } | { ok: false; limit: 'tokens' | 'cost'; retryAfterMs: number; reason?: BudgetRefused };

const WINDOW_MS = { hour: 3_600_000, day: 86_400_000 } as const;
const UNITS = ['tokens', 'cost'] as const;
/** Refused only because of what requests in flight reserved: worth asking again soon, as they settle. */
const IN_FLIGHT_RETRY_MS = 1000;

export class TokenBudget {
  private windowStart = 0;
  private windowMs = 0;
  private spent: Spend = { tokens: 0, cost: 0 };
  private reserved: Spend = { tokens: 0, cost: 0 };

  constructor(
    private limits: BudgetLimits,
    private readonly clock: Clock,
  ) {
    this.roll();
  }

  /** New limits; what was spent in the current window stays spent (it starts over if the window's length changed). */
  reconfigure(limits: BudgetLimits): void {
    this.limits = limits;
    this.roll();
  }

  /** Reserves `amount` if it fits under every limit, counting what is spent and what requests in flight reserved. */
  tryReserve(amount: Spend): BudgetAdmission {
    this.roll();
    for (const unit of UNITS) {
      const limit = this.limits[unit];
      if (limit <= 0 || this.spent[unit] + this.reserved[unit] + amount[unit] <= limit) continue;
      const untilRoll = this.windowStart + WINDOW_MS[this.limits.window] - this.clock.wallTime();
      const spentAlone = this.spent[unit] + amount[unit] > limit;
      return { ok: false, limit: unit, retryAfterMs: spentAlone ? untilRoll : Math.min(untilRoll, IN_FLIGHT_RETRY_MS) };
    }
    this.reserved.tokens += amount.tokens;
    this.reserved.cost += amount.cost;
    return { ok: true };
  }

  /** Ends a reservation of `reserved`, charging `used` to the current window. */
  settle(reserved: Spend, used: Spend): void {
    this.roll();
    this.reserved.tokens = Math.max(0, this.reserved.tokens - reserved.tokens);
    this.reserved.cost = Math.max(0, this.reserved.cost - reserved.cost);
    this.spent.tokens += used.tokens;
    this.spent.cost += used.cost;
  }

  /** The window now, what it has spent and what is reserved, for /status and metrics. */
  snapshot() {
    this.roll();
    return {
      window: this.limits.window,
      windowEndsAt: this.windowStart + WINDOW_MS[this.limits.window],
      limits: { tokens: this.limits.tokens, cost: this.limits.cost },
      spent: { ...this.spent },
      reserved: { ...this.reserved },
    };
  }

  saved(): SavedBudget {
    this.roll();
    return { windowStart: this.windowStart, ...this.spent };
  }

  /** Takes back what was spent before a restart, if it was spent in the current window. */
  restore(saved: SavedBudget): void {
    this.roll();
    if (saved.windowStart !== this.windowStart) return;
    this.spent = { tokens: Math.max(this.spent.tokens, saved.tokens), cost: Math.max(this.spent.cost, saved.cost) };
  }

  private roll(): void {
    const length = WINDOW_MS[this.limits.window];
    const start = Math.floor(this.clock.wallTime() / length) * length;
    // The same window, or the wall clock stepped back: what was spent stays spent.
    if (length === this.windowMs && start <= this.windowStart) return;
    this.windowStart = start;
    this.windowMs = length;
    this.spent = { tokens: 0, cost: 0 };
  }
}
