/**
 * The Events that sidecars' reports call for, BreakerOpened and ConfigRejected,
 * as the leader records them: from each pod's newest report wherever it arrived
 * (the view reconcile reads), and once each. A report reaches one replica or
 * another through the Service and comes again (re-sent every 30 s, recorded in
 * a ConfigMap for the leader), so an Event is keyed by what it is about, never
 * by a delivery: an opening by (pod, upstream, breaker, opening time), a
 * rejection by (pod, generation, hash).
 *
 * Openings from before this replica led were its predecessor's to record. The
 * opening time is the sidecar's wall clock and the start of leadership this
 * replica's, so a skew between the two clocks moves that line by as much. A
 * sidecar that does not say when its breakers opened (older than `opened` in
 * the report) gets an Event when an upstream's open count rises.
 */
import { EventReason, type SidecarReport } from '../api/index.js';
import type { EventRecorder, EventTarget } from './event-recorder.js';

/** Keys remembered per pod, oldest dropped first: many more than a report names, so one that comes again is known. */
const REMEMBERED_PER_POD = 64;

export class ReportEvents {
  /** Per pod, the keys of the Events recorded for it, oldest first. */
  private readonly recorded = new Map<string, string[]>();
  /** Per pod whose sidecar does not report openings: its open breakers per upstream in the newest report seen. */
  private readonly openCounts = new Map<string, Record<string, number>>();
  private leadingSince = -Infinity;

  constructor(
    private readonly events: Pick<EventRecorder, 'record'>,
    /** Wall-clock time (ms since the epoch). */
    private readonly now: () => number = Date.now,
  ) {}

  /** This replica has just become the leader: what it remembers from before is stale. */
  startLeading(): void {
    this.recorded.clear();
    this.openCounts.clear();
    this.leadingSince = this.now();
  }

  /** Records the Events that `report`, the newest of `pod`, calls for and that were not recorded yet. */
  observe(target: EventTarget, pod: string, report: SidecarReport): void {
    if (report.opened) {
      this.openCounts.delete(pod);
      for (const { upstream, breaker, openedAt } of report.opened) {
        if (openedAt < this.leadingSince || !this.remember(pod, `opened/${upstream}/${openedAt}/${breaker}`)) continue;
        const scope = breaker === '*' ? '' : ` (scope ${breaker})`;
        // The opening time makes each episode's message its own: the recorder's repeat limit never swallows a new outage.
        this.events.record(target, 'Warning', EventReason.BreakerOpened, `pod ${pod}: circuit breaker for upstream ${upstream} opened${scope} at ${new Date(openedAt).toISOString()}`);
      }
    } else {
      const before = this.openCounts.get(pod);
      const now: Record<string, number> = {};
      for (const [upstream, counts] of Object.entries(report.breakers)) {
        now[upstream] = counts.open;
        if (counts.open > (before?.[upstream] ?? 0)) this.events.record(target, 'Warning', EventReason.BreakerOpened, `pod ${pod}: circuit breaker for upstream ${upstream} opened`);
      }
      this.openCounts.set(pod, now);
    }
    const rejected = report.rejected;
    if (rejected && this.remember(pod, `rejected/${rejected.version.generation}/${rejected.version.hash}`)) {
      this.events.record(target, 'Warning', EventReason.ConfigRejected, `pod ${pod} rejected generation ${rejected.version.generation}: ${rejected.error}`);
    }
  }

  /** Forgets a pod that is gone. */
  forget(pod: string): void {
    this.recorded.delete(pod);
    this.openCounts.delete(pod);
  }

  /** Notes `key` for `pod`; false when it was noted already. */
  private remember(pod: string, key: string): boolean {
    let keys = this.recorded.get(pod);
    if (!keys) this.recorded.set(pod, (keys = []));
    if (keys.includes(key)) return false;
    keys.push(key);
    if (keys.length > REMEMBERED_PER_POD) keys.shift();
    return true;
  }
}
