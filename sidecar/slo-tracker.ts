/**
 * The policy's SLOs as one sidecar sees them: which finished requests are
 * good or bad for each SLI, counted in SLI windows over the SLO window and
 * the alerting windows, for metrics (burn rates) and the controller's
 * status (counts over the window).
 */
import type { SloConfig } from './config/index.js';
import type { Delivery } from './proxy/inbound/write-outcome.js';
import type { LiveSlo } from './live-gauges.js';
import { BURN_WINDOWS, type Clock, type SliCounts, SliWindow } from './resilience/index.js';

export type SliName = 'availability' | 'timeToFirstToken';

/** Failures the app or its policy chose: they say nothing about the service. */
const NOT_THE_SERVICE = new Set(['client-error', 'context-length', 'content-filter', 'budget-exhausted']);

/**
 * How one finished request counts: availability good if it was answered (by any tier but the static message),
 * bad if it failed; time to first token, for a streamed answer that started, good if it started within the threshold.
 */
export function sliEvents(d: Delivery, stream: boolean, startedAt: number, thresholdMs: number): { availability?: boolean; timeToFirstToken?: boolean } {
  if (d.outcome === 'cancelled' || NOT_THE_SERVICE.has(d.failure)) return {};
  const availability = d.outcome === 'ok';
  if (!stream || d.outcome !== 'ok' || d.firstByteAt === undefined) return { availability };
  return { availability, timeToFirstToken: d.firstByteAt - startedAt <= thresholdMs };
}

export class SloTracker implements LiveSlo {
  /** The SLIs with an objective: each its objective (a ratio) and its window. */
  readonly slis = new Map<SliName, { objective: number; window: SliWindow }>();

  constructor(
    readonly config: SloConfig,
    readonly policy: string,
    clock: Clock,
  ) {
    const span = Math.max(config.windowMs, BURN_WINDOWS['6h']);
    if (config.availability > 0) this.slis.set('availability', { objective: config.availability, window: new SliWindow(span, clock) });
    if (config.timeToFirstToken.objective > 0) this.slis.set('timeToFirstToken', { objective: config.timeToFirstToken.objective, window: new SliWindow(span, clock) });
  }

  /** Counts a finished request; returns the SLI events it made. */
  record(d: Delivery, stream: boolean, startedAt: number): [SliName, boolean][] {
    const events = sliEvents(d, stream, startedAt, this.config.timeToFirstToken.thresholdMs);
    const made: [SliName, boolean][] = [];
    for (const [name, sli] of this.slis) {
      const good = events[name];
      if (good === undefined) continue;
      sli.window.record(good);
      made.push([name, good]);
    }
    return made;
  }

  /**
   * Good and total events of each SLI over the SLO window, as reported to the controller, and whether each
   * has events and meets its objective: a change of that is worth a report of its own.
   */
  report(): { counts: Partial<Record<SliName, SliCounts>>; verdict: string } {
    const counts: Partial<Record<SliName, SliCounts>> = {};
    const verdict: string[] = [];
    for (const [name, sli] of this.slis) {
      const c = (counts[name] = sli.window.counts(this.config.windowMs));
      verdict.push(`${name}:${c.total === 0 ? 'none' : c.good >= sli.objective * c.total ? 'met' : 'missed'}`);
    }
    return { counts, verdict: verdict.join(',') };
  }
}
