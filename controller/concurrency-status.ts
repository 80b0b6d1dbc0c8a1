/**
 * The concurrency limit of each upstream across a policy's pods, for its
 * status (status.upstreams[].concurrency): from each pod's last report, the
 * lowest, median and highest limit in force, and the mode and bounds most
 * pods report (pods on an older generation may differ for a while). Each
 * pod counts once per upstream (protocol-checks.ts refuses a report that
 * names one twice).
 */
import type { SidecarReport } from '../api/index.js';
import type { PolicyStatus } from '../api/policy-status.js';

export type ConcurrencyStatus = NonNullable<NonNullable<PolicyStatus['upstreams']>[number]['concurrency']>;

/** Per upstream named in `reports`, its concurrency across the pods that report it. */
export function concurrencyStatus(reports: readonly (SidecarReport | undefined)[]): Map<string, ConcurrencyStatus> {
  const byUpstream = new Map<string, NonNullable<SidecarReport['concurrency']>>();
  for (const report of reports) {
    for (const c of report?.concurrency ?? []) {
      const list = byUpstream.get(c.upstream);
      if (list) list.push(c);
      else byUpstream.set(c.upstream, [c]);
    }
  }
  const out = new Map<string, ConcurrencyStatus>();
  for (const [name, limits] of byUpstream) {
    // The mode and bounds most pods report (a tie: the first by their JSON).
    const settings = new Map<string, { count: number; mode: ConcurrencyStatus['mode']; min: number; max: number }>();
    for (const { mode, min, max } of limits) {
      const key = JSON.stringify([mode, min, max]);
      const seen = settings.get(key);
      if (seen) seen.count++;
      else settings.set(key, { count: 1, mode, min, max });
    }
    const [, { mode, min, max }] = [...settings].sort((a, b) => b[1].count - a[1].count || a[0].localeCompare(b[0]))[0]!;
    const sorted = limits.map((c) => c.limit).sort((a, b) => a - b);
    const median = sorted.length % 2 === 1 ? sorted[(sorted.length - 1) / 2]! : Math.round((sorted[sorted.length / 2 - 1]! + sorted[sorted.length / 2]!) / 2);
    out.set(name, { mode, min, max, limits: { lowest: sorted[0]!, median, highest: sorted.at(-1)! }, pods: limits.length });
  }
  return out;
}
