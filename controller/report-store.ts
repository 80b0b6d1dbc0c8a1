/**
 * Where sidecar reports reach the leader from other replicas: on the pod
 * itself, as the annotation `breakwater.dev/sidecar-state`. A replica that is
 * not the leader writes it for the sidecars connected to it (only when it
 * changed, at most once per interval per pod), and the leader reads it from
 * its pod cache. So there is no traffic between replicas, and a new leader
 * finds every pod's last state in the API.
 */
import { PatchStrategy, setHeaderOptions, type CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { validateReport, type SidecarReport } from '../api/index.js';

export const REPORT_ANNOTATION = 'breakwater.dev/sidecar-state';

/** Recorded reports are at most this long (a real one is a few hundred bytes). */
const MAX_RECORDED_CHARS = 16 * 1024;

/**
 * The report recorded on a pod, if any and if it checks out against its
 * policy's upstreams. The pod's owner can write this annotation too, so it is
 * validated like a report that came over the wire.
 */
export function reportOf(pod: V1Pod, upstreams: ReadonlySet<string>): SidecarReport | undefined {
  const text = pod.metadata?.annotations?.[REPORT_ANNOTATION];
  if (!text || text.length > MAX_RECORDED_CHARS) return undefined;
  try {
    const checked = validateReport(JSON.parse(text), upstreams);
    return checked.ok ? checked.report : undefined;
  } catch {
    return undefined;
  }
}

export class ReportStore {
  private readonly pending = new Map<string, string>();
  private readonly written = new Map<string, string>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly core: CoreV1Api,
    private readonly log: Logger,
    private readonly intervalMs = 500,
  ) {}

  /** Records a pod's (`namespace/name`) latest report, coalescing bursts. */
  save(pod: string, report: SidecarReport): void {
    const text = JSON.stringify(report);
    if (this.written.get(pod) === text) return;
    this.pending.set(pod, text);
    this.timer ??= setTimeout(() => void this.flush(), this.intervalMs);
  }

  /** Forgets a pod that is gone. */
  forget(pod: string): void {
    this.pending.delete(pod);
    this.written.delete(pod);
  }

  private async flush(): Promise<void> {
    this.timer = undefined;
    const batch = [...this.pending];
    this.pending.clear();
    await Promise.all(
      batch.map(async ([pod, text]) => {
        const [namespace, name] = pod.split('/') as [string, string];
        try {
          await this.core.patchNamespacedPod(
            { namespace, name, body: { metadata: { annotations: { [REPORT_ANNOTATION]: text } } } },
            setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
          );
          this.written.set(pod, text);
        } catch (err) {
          if ((err as { code?: number }).code === 404) return this.forget(pod);
          this.log.warn({ pod, err: (err as Error).message }, 'could not record a sidecar report; retrying');
          if (!this.pending.has(pod)) this.pending.set(pod, text);
          this.timer ??= setTimeout(() => void this.flush(), this.intervalMs * 4);
        }
      }),
    );
  }

  close(): void {
    clearTimeout(this.timer);
  }
}
