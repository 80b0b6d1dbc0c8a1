/**
 * Core Events on a policy (what `kubectl describe rp` shows), rate-limited:
 * the same reason and message for the same policy at most once per interval;
 * repeats within it are counted into the next one.
 */
import type { CoreV1Api } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { EventReason } from '../api/index.js';

export interface EventTarget {
  apiVersion: string;
  kind: string;
  metadata: { name?: string; namespace?: string; uid?: string };
}

export class EventRecorder {
  private readonly last = new Map<string, { at: number; suppressed: number }>();

  constructor(
    private readonly core: CoreV1Api,
    private readonly log: Logger,
    private readonly minIntervalMs = 30_000,
    private readonly component = 'breakwater-controller',
  ) {}

  record(target: EventTarget, type: 'Normal' | 'Warning', reason: EventReason, message: string): void {
    const key = `${target.metadata.uid}/${reason}/${message}`;
    const seen = this.last.get(key);
    const now = Date.now();
    if (seen && now - seen.at < this.minIntervalMs) {
      seen.suppressed++;
      return;
    }
    const count = 1 + (seen?.suppressed ?? 0);
    this.last.set(key, { at: now, suppressed: 0 });
    if (this.last.size > 10_000) this.last.clear();
    const { name, namespace, uid } = target.metadata;
    const time = new Date();
    void this.core
      .createNamespacedEvent({
        namespace: namespace!,
        body: {
          metadata: { generateName: `${name}.`, namespace },
          involvedObject: { apiVersion: target.apiVersion, kind: target.kind, name, namespace, uid },
          type,
          reason,
          message: count > 1 ? `${message} (${count} times)` : message,
          count,
          firstTimestamp: time,
          lastTimestamp: time,
          source: { component: this.component },
          reportingComponent: this.component,
        },
      })
      .catch((err: unknown) => this.log.warn({ err: (err as Error).message, reason }, 'could not record event'));
  }
}
