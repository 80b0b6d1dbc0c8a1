/**
 * Whole-sidecar degradation modes (normal → degraded → emergency) from a
 * rolling window of the error rate and the queue depth. A mode is entered as
 * soon as its threshold is reached and left only once the measure falls below
 * half of it and the mode has been held for a quarter of the window, so a
 * steady rate at the threshold does not make it flap.
 */
import type { Clock } from './clock.js';
import { SlidingCounts } from './sliding-counts.js';

export type Mode = 'normal' | 'degraded' | 'emergency';

export interface DegradationSettings {
  windowMs: number;
  /** Percent; 0 turns the check off. */
  degradedErrorRate: number;
  /** Queued requests; 0 turns the check off. */
  degradedQueueDepth: number;
  emergencyErrorRate: number;
}

/** Requests needed in the window before its error rate counts. */
export const MIN_REQUESTS = 20;
const REQUESTS = 0;
const ERRORS = 1;
const RANK: Record<Mode, number> = { normal: 0, degraded: 1, emergency: 2 };

export class DegradationMonitor {
  private current: Mode = 'normal';
  private since = 0;
  private readonly counts: SlidingCounts;

  constructor(
    private readonly settings: DegradationSettings,
    private readonly clock: Clock,
    private readonly onChange: (from: Mode, to: Mode) => void = () => {},
  ) {
    this.counts = new SlidingCounts(settings.windowMs, clock, 2);
  }

  /** Counts a request that reached the upstreams, and whether it failed. */
  record(failed: boolean): void {
    this.counts.add(REQUESTS);
    if (failed) this.counts.add(ERRORS);
  }

  /** The mode now, given how many requests are queued. */
  mode(queueDepth: number): Mode {
    const requests = this.counts.total(REQUESTS);
    const rate = requests >= MIN_REQUESTS ? (100 * this.counts.total(ERRORS)) / requests : 0;
    const { degradedErrorRate: d, degradedQueueDepth: q, emergencyErrorRate: e } = this.settings;
    const reached = (threshold: number, value: number, factor = 1) => threshold > 0 && value >= threshold * factor;
    const target: Mode = reached(e, rate) ? 'emergency' : reached(d, rate) || reached(q, queueDepth) ? 'degraded' : 'normal';
    if (RANK[target] > RANK[this.current]) return this.moveTo(target);
    if (RANK[target] < RANK[this.current]) {
      // Hysteresis: stay while the measure is above half the current mode's threshold, or the mode is young.
      const held = this.clock.now() - this.since >= this.settings.windowMs / 4;
      const stillHigh = this.current === 'emergency' ? reached(e, rate, 0.5) : reached(d, rate, 0.5) || reached(q, queueDepth, 0.5);
      if (held && !stillHigh) return this.moveTo(target);
    }
    return this.current;
  }

  get name(): Mode {
    return this.current;
  }

  private moveTo(mode: Mode): Mode {
    const from = this.current;
    this.current = mode;
    this.since = this.clock.now();
    this.onChange(from, mode);
    return mode;
  }
}
