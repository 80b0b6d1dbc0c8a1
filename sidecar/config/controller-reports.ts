/**
 * What the sidecar reports to the controller (api/protocol.ts): the config
 * version applied or rejected, its breakers, those open or half-open, its
 * SLI counts, its budgets (spent by the fleet or the pod, and whether the
 * shared store answers) and its upstreams' concurrency limits (a limit that
 * moves rides on reports sent for another reason). A report is sent when that changes (SLI counts change with
 * every request, so only a change of an SLO's verdict counts), at least
 * every 30 s, and at once after each snapshot. Each goes on a short-lived
 * connection, with a deadline.
 */
import { request, type RequestOptions } from 'node:https';
import type { Logger } from 'pino';
import type { ConfigVersion, SidecarReport } from '../../api/index.js';

const REPORT_TIMEOUT_MS = 5_000;

/** What a report is made of, and where it is from. */
export interface ReportSources {
  pod: string;
  breakers(): SidecarReport['breakers'];
  /** The breakers that are open or half-open, each with when it opened. */
  opened?(): SidecarReport['opened'];
  /** SLI counts over the SLO window, sent with every report, and whether each SLO is met: only a change of that is a reason for one. */
  slo?(): { counts: SidecarReport['slo']; verdict: string } | undefined;
  /** The budgets in force: what they spent rides on reports sent for another reason; a change of anything else is a reason for one. */
  budgets?(): SidecarReport['budgets'];
  /** Whether the shared store answers (undefined without one): a change is a reason for a report. */
  sharedStore?(): SidecarReport['sharedStore'];
  /** Each upstream's concurrency limit: a change of its mode or bounds is a reason for a report; the limit alone rides on reports sent for another reason. */
  concurrency?(): SidecarReport['concurrency'];
  log: Logger;
}

/** Sends a report to the replica `url()` names, if anything changed or `force`; `config()` is the config's state in the stream's hands. */
export function reporter(
  sources: ReportSources,
  url: () => string,
  tls: () => RequestOptions,
  config: () => { applied: ConfigVersion | null; rejected: SidecarReport['rejected'] },
): (force?: boolean) => void {
  const { log } = sources;
  let lastSent = '';
  let lastSentAt = 0;
  return (force = false) => {
    const state: SidecarReport = { ...config(), breakers: sources.breakers(), opened: sources.opened?.(), sharedStore: sources.sharedStore?.() };
    const slo = sources.slo?.();
    const budgets = sources.budgets?.();
    const concurrency = sources.concurrency?.();
    const key = JSON.stringify([state, slo?.verdict, budgets?.map(({ spent: _spent, ...rest }) => rest), concurrency?.map(({ limit: _limit, ...rest }) => rest)]);
    // SLI counts change with every request: they ride on reports sent for a change (an SLO met or missed) or every 30 s.
    if (!force && key === lastSent && Date.now() - lastSentAt < 30_000) return;
    lastSent = key;
    lastSentAt = Date.now();
    const body = JSON.stringify({ ...state, slo: slo?.counts, budgets, concurrency } satisfies SidecarReport);
    let req;
    try {
      // Reports are rare: a short-lived connection, so the controller holds one connection per pod, not two.
      // A report to a replica that is going away is given up rather than left waiting for the kernel's SYN timeout.
      req = request(`${url()}/v1/report?pod=${encodeURIComponent(sources.pod)}`, { ...tls(), method: 'POST', agent: false, timeout: REPORT_TIMEOUT_MS }, (res) => res.resume());
      req.on('timeout', () => req!.destroy(new Error('report timed out')));
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'cannot report to the controller');
      return;
    }
    req.setHeader('content-type', 'application/json');
    req.on('error', () => {
      lastSent = ''; // try again next round
    });
    req.end(body);
  };
}
