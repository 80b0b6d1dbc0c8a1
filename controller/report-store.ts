/**
 * Where sidecar reports reach the leader from other replicas: one ConfigMap
 * per replica in the controller's own namespace (`breakwater-reports-<replica>`,
 * labelled `breakwater.dev/reports`), one key per pod. Only the controller
 * (and cluster admins) can write there; a pod's owner cannot, as they could
 * an annotation on their pod.
 *
 * - A replica that does not lead records the reports of the sidecars
 *   connected to it (ReportRecorder: only changes, coalesced per interval).
 * - The leader watches these ConfigMaps (RecordedReports) and takes, for each
 *   pod, the newest report, checked against the pod's policy as if it had
 *   come over the wire. A new leader finds every pod's last state in the API.
 * - A ConfigMap belongs to its replica's Pod (ownerReference), so it goes
 *   with it.
 */
import type { CoreV1Api, V1ConfigMap, V1OwnerReference } from '@kubernetes/client-node';
import { PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { validateReport, type SidecarReport } from '../api/index.js';

export const REPORTS_LABEL = 'breakwater.dev/reports';

/** One report is at most this long (a real one is a few hundred bytes). */
const MAX_REPORT_CHARS = 16 * 1024;
/** A ConfigMap holds at most 1 MiB: past this, a replica records no new pods (about 3,000 at a typical size). */
const MAX_RECORDED_CHARS = 900 * 1024;

/** `namespace/name` as a ConfigMap key: `_` is in neither a namespace nor a pod name. */
const keyOfPod = (pod: string) => pod.replace('/', '_');
const podOfKey = (key: string) => key.replace('_', '/');

/** The ConfigMap name for a replica's identity: a DNS subdomain. */
export function reportsConfigMapName(identity: string): string {
  const safe = identity.toLowerCase().replace(/[^a-z0-9.-]+/g, '-').replace(/^[^a-z0-9]+|[^a-z0-9]+$/g, '');
  return `breakwater-reports-${safe.slice(0, 200) || 'replica'}`;
}

interface Recorded {
  /** When the replica recorded it (ms since the epoch): the newest wins. */
  at: number;
  report: unknown;
}

/** Writes this replica's sidecars' reports into its ConfigMap. */
export class ReportRecorder {
  /** Per ConfigMap key: the recorded entry, and the report alone (to skip what did not change). */
  private readonly entries = new Map<string, string>();
  private readonly reports = new Map<string, string>();
  private readonly changed = new Set<string>();
  private size = 0;
  private created = false;
  private timer: NodeJS.Timeout | undefined;
  private warnedFull = false;

  constructor(
    private readonly core: CoreV1Api,
    private readonly target: { namespace: string; name: string; owner?: V1OwnerReference },
    private readonly log: Logger,
    private readonly intervalMs = 500,
    private readonly now: () => number = Date.now,
  ) {}

  /** Records a pod's (`namespace/name`) latest report, coalescing bursts. */
  save(pod: string, report: SidecarReport): void {
    const key = keyOfPod(pod);
    const reportText = JSON.stringify(report);
    if (this.reports.get(key) === reportText) return;
    const text = JSON.stringify({ at: this.now(), report } satisfies Recorded);
    const before = this.entries.get(key);
    const grown = this.size - (before?.length ?? 0) + text.length;
    if (grown > MAX_RECORDED_CHARS) {
      if (!this.warnedFull) this.log.warn({ configMap: this.target.name }, 'the reports ConfigMap is full; reports of further pods are not recorded');
      this.warnedFull = true;
      return;
    }
    this.size = grown;
    this.entries.set(key, text);
    this.reports.set(key, reportText);
    this.schedule(key);
  }

  /** Forgets a pod that is gone. */
  forget(pod: string): void {
    const key = keyOfPod(pod);
    const before = this.entries.get(key);
    if (before === undefined) return;
    this.size -= before.length;
    this.entries.delete(key);
    this.reports.delete(key);
    this.schedule(key);
  }

  private schedule(key: string, delayMs = this.intervalMs): void {
    this.changed.add(key);
    this.timer ??= setTimeout(() => void this.flush(), delayMs);
  }

  private async flush(): Promise<void> {
    this.timer = undefined;
    const keys = [...this.changed];
    this.changed.clear();
    const { namespace, name, owner } = this.target;
    try {
      if (!this.created) {
        await this.core
          .createNamespacedConfigMap({
            namespace,
            body: { metadata: { name, namespace, labels: { [REPORTS_LABEL]: 'true' }, ownerReferences: owner ? [owner] : undefined }, data: Object.fromEntries(this.entries) },
          })
          .catch((err: { code?: number }) => (err.code === 409 ? undefined : Promise.reject(err)));
        this.created = true;
      }
      // A JSON merge patch: a key set to null is removed.
      const data = Object.fromEntries(keys.map((k) => [k, this.entries.get(k) ?? null]));
      await this.core.patchNamespacedConfigMap({ namespace, name, body: { data } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
    } catch (err) {
      if ((err as { code?: number }).code === 404) this.created = false;
      this.log.warn({ configMap: name, err: (err as Error).message }, 'could not record sidecar reports; retrying');
      for (const k of keys) this.changed.add(k);
      this.timer ??= setTimeout(() => void this.flush(), this.intervalMs * 4);
    }
  }

  close(): void {
    clearTimeout(this.timer);
  }
}

/** The reports other replicas recorded, as the leader reads them. */
export class RecordedReports {
  private readonly byConfigMap = new Map<string, Map<string, string>>();

  /** Takes a reports ConfigMap as it is now; gives the pods whose report changed. */
  upsert(cm: V1ConfigMap): string[] {
    const name = cm.metadata?.name ?? '';
    const before = this.byConfigMap.get(name) ?? new Map<string, string>();
    const now = new Map(Object.entries(cm.data ?? {}).filter(([, text]) => text.length <= MAX_REPORT_CHARS + 64));
    this.byConfigMap.set(name, now);
    return changedPods(before, now);
  }

  remove(cm: V1ConfigMap): string[] {
    const name = cm.metadata?.name ?? '';
    const before = this.byConfigMap.get(name) ?? new Map<string, string>();
    this.byConfigMap.delete(name);
    return changedPods(before, new Map());
  }

  /** The newest recorded report of a pod (`namespace/name`) that checks out against its policy's upstreams, and when it was recorded. */
  reportFor(pod: string, upstreams: ReadonlySet<string>): { at: number; report: SidecarReport } | undefined {
    const key = keyOfPod(pod);
    let newest: { at: number; report: SidecarReport } | undefined;
    for (const entries of this.byConfigMap.values()) {
      const text = entries.get(key);
      if (text === undefined) continue;
      try {
        const recorded = JSON.parse(text) as Partial<Recorded>;
        const at = typeof recorded.at === 'number' ? recorded.at : 0;
        const checked = validateReport(recorded.report, upstreams);
        if (checked.ok && (!newest || at > newest.at)) newest = { at, report: checked.report };
      } catch {
        // not JSON: not a report
      }
    }
    return newest;
  }
}

function changedPods(before: Map<string, string>, now: Map<string, string>): string[] {
  const keys = new Set([...before.keys(), ...now.keys()]);
  return [...keys].filter((k) => before.get(k) !== now.get(k)).map(podOfKey);
}
