/**
 * The sidecars connected to this controller: one server-sent-event stream per
 * pod, the snapshot last sent on it, and the last report each pod sent here
 * (reports are separate requests: through a Service they may reach another
 * replica than the pod's stream does). A snapshot is sent when a stream
 * opens and whenever the pod's desired config version, or what is known of
 * its Secret keys, changes; none while it waits for a Secret's first read
 * (the read's end refreshes the pod). Heartbeats keep idle streams (and
 * their proxies) alive.
 */
import { createHash } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { validateReport, type ConfigSnapshot, type SidecarReport } from '../api/index.js';

/** What a pod should run: a snapshot (held back while `waiting` for a Secret's first read), or why it has none. */
export type Desired = { snapshot: ConfigSnapshot; waiting?: boolean } | { reason: string };

/** A digest of what a snapshot says of its Secret keys (only the digest is kept here, never a value). */
/** What a stopping controller ends each config stream with (api/protocol.ts). */
const DRAIN_NOTICE = 'event: draining\ndata: {}\n\n';

/**
 * A pod count as the snapshots' fingerprint holds it: exact up to 8, then in steps of a quarter. A fleet that
 * scales pod by pod resends its snapshots (whose selectedPods is the exact count) some ten times between 10 and
 * 100 pods, not ninety: the count only divides a fleet limit while the shared store is away.
 */
const podsStep = (pods: number | undefined) => (pods === undefined || pods <= 8 ? pods : Math.floor(Math.log(pods) / Math.log(1.25)));

const credentialsDigest = ({ credentials, credentialProblems, unreadCredentials }: ConfigSnapshot) =>
  credentials ? createHash('sha256').update(JSON.stringify([credentials, credentialProblems, unreadCredentials])).digest('hex') : '';

export interface ReceivedReport {
  at: number;
  report: SidecarReport;
}

interface Connection {
  res: ServerResponse;
  sent?: string;
}

export class ConfigHub {
  private readonly connections = new Map<string, Set<Connection>>();
  /** The last report each pod sent to this replica, and when it came (ms since the epoch). */
  private readonly reports = new Map<string, ReceivedReport>();
  private readonly heartbeat: NodeJS.Timeout;

  constructor(
    /** The config a pod (`namespace/name`) should run now. */
    private readonly desired: (pod: string) => Desired,
    /** The upstreams of the policy a pod runs now (its report may name breakers of these only). */
    private readonly upstreams: (pod: string) => ReadonlySet<string>,
    private readonly onReport: (pod: string, report: SidecarReport, previous: SidecarReport | undefined) => void,
    heartbeatMs = 15_000,
    private readonly now: () => number = Date.now,
  ) {
    this.heartbeat = setInterval(() => {
      for (const set of this.connections.values()) for (const c of set) c.res.write(': heartbeat\n\n');
    }, heartbeatMs);
    this.heartbeat.unref();
  }

  get size(): number {
    let n = 0;
    for (const set of this.connections.values()) n += set.size;
    return n;
  }

  /** Starts streaming to a pod; returns the function that ends it. */
  attach(pod: string, res: ServerResponse): () => void {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', 'x-accel-buffering': 'no' });
    const connection: Connection = { res };
    let set = this.connections.get(pod);
    if (!set) this.connections.set(pod, (set = new Set()));
    set.add(connection);
    this.send(pod, connection);
    return () => {
      set.delete(connection);
      if (set.size === 0) this.connections.delete(pod);
    };
  }

  /** Sends a pod its desired config if it changed since the last send. */
  refresh(pod: string): void {
    for (const connection of this.connections.get(pod) ?? []) this.send(pod, connection);
  }

  /** Pods with an open stream. */
  connectedPods(): string[] {
    return [...this.connections.keys()];
  }

  /** The latest report a pod sent to this replica, whether or not its stream is here. */
  latestReport(pod: string): ReceivedReport | undefined {
    return this.reports.get(pod);
  }

  /** Pods that reported to this replica. */
  reportingPods(): string[] {
    return [...this.reports.keys()];
  }

  /** Takes a pod's report once it checks out (see validateReport); returns why it was refused, if it was. */
  report(pod: string, body: unknown): string | undefined {
    const checked = validateReport(body, this.upstreams(pod));
    if (!checked.ok) return checked.error;
    const report = checked.report;
    const previous = this.reports.get(pod)?.report;
    this.reports.set(pod, { at: this.now(), report });
    this.onReport(pod, report, previous);
    return undefined;
  }

  forget(pod: string): void {
    this.reports.delete(pod);
  }

  /**
   * Ends every stream with a drain notice (the sidecars reconnect, to another replica, at their backoff's
   * base: controller-source.ts); resolves once each is written out, or after `graceMs`.
   */
  close(graceMs = 1000): Promise<void> {
    clearInterval(this.heartbeat);
    const ends: Promise<void>[] = [];
    for (const set of this.connections.values()) {
      for (const c of set) ends.push(new Promise((resolve) => c.res.end(DRAIN_NOTICE, () => resolve())));
    }
    this.connections.clear();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, graceMs);
      void Promise.all(ends).then(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private send(pod: string, connection: Connection): void {
    const desired = this.desired(pod);
    if ('snapshot' in desired && desired.waiting) return;
    const [event, data] = 'snapshot' in desired ? ['snapshot', desired.snapshot] : ['no-policy', { reason: desired.reason }];
    const payload = JSON.stringify(data);
    // A rotated credential makes a new snapshot of the same version, and so does a pod count that moved by a step.
    const fingerprint = 'snapshot' in desired ? `${event}:${JSON.stringify(desired.snapshot.version)}:${credentialsDigest(desired.snapshot)}:${podsStep(desired.snapshot.selectedPods)}` : `${event}:${payload}`;
    if (connection.sent === fingerprint) return;
    connection.sent = fingerprint;
    connection.res.write(`event: ${event}\ndata: ${payload}\n\n`);
  }
}
