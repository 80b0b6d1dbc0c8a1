/**
 * The controller's level-based core. Informers keep caches of policies and of
 * injected pods (policy-cache.ts); sidecars' reports arrive through the config hub. The leader
 * uses its own sidecars' reports as they arrive; other replicas record theirs
 * in ConfigMaps of the controller's namespace (report-store.ts), which the
 * leader watches. Any change
 * marks the affected policies dirty; a coalescing loop (dirty-keys.ts) then
 * recomputes each one's status from the caches alone (so the outcome does not
 * depend on the order of events, and is the same after a restart) and writes
 * it through the status subresource only when it changed (status-writes.ts). Pods are re-sent their config
 * whenever what they should run changes. The Events reports call for are
 * recorded in the same pass, by the leader alone (report-events.ts).
 */
import type { CoreV1Api, CustomObjectsApi, V1ConfigMap, V1ObjectMeta } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { hashSpec, MAX_SELECTED_PODS, type PolicySpec, type SidecarReport } from '../api/index.js';
import type { PolicyStatus } from '../api/policy-status.js';
import { ConfigHub, type Desired } from './config-hub.js';
import { DirtyKeys } from './dirty-keys.js';
import type { EventRecorder } from './event-recorder.js';
import { PolicyCache } from './policy-cache.js';
import { policyFacts } from './policy-facts.js';
import { isLive, podKey, type PodMeta, type PolicyObject } from './policy-object.js';
import { computeStatus, type PolicyFacts } from './policy-status.js';
import type { Resolution } from './policy-resolution.js';
import { ReportEvents } from './report-events.js';
import { secretRefsOf, type PolicyCredentials, type SecretRef } from './secret-values.js';
import { RecordedReports, type ReportRecorder } from './report-store.js';
import { statusDue, writeStatus } from './status-writes.js';

export interface ReconcilerDeps {
  custom: CustomObjectsApi;
  core: CoreV1Api;
  events: EventRecorder;
  /** Where this replica records its sidecars' reports while it does not lead. */
  reports: ReportRecorder;
  log: Logger;
  /** Only the leader writes status and records Events. */
  isLeader: () => boolean;
  coalesceMs?: number;
  /** Wall-clock time (ms since the epoch): when this replica started leading, and each status's observedAt. */
  now?: () => number;
  /** A policy's status is written at least this often (ms), so that a growing observedAt says no controller is watching. */
  observedRefreshMs?: number;
  /** What is known now of a policy's Secret keys (secret-values.ts), for its pods' snapshots. */
  credentials?: (namespace: string, refs: readonly SecretRef[]) => PolicyCredentials;
}

export class Reconciler {
  readonly hub: ConfigHub;
  private readonly cache = new PolicyCache();
  private readonly policies = this.cache.policies;
  private readonly pods = this.cache.pods;
  private readonly recorded = new RecordedReports();
  private readonly reportEvents: ReportEvents;
  private readonly dirty: DirtyKeys;
  statusWrites = 0;

  constructor(private readonly deps: ReconcilerDeps) {
    this.hub = new ConfigHub(
      (pod) => this.desired(pod),
      (pod) => new Set(this.cache.policyOf(pod)?.spec.upstreams.map((u) => u.name)),
      (pod, report) => this.onReport(pod, report),
    );
    this.reportEvents = new ReportEvents(deps.events, deps.now);
    this.dirty = new DirtyKeys((key) => this.reconcile(key), deps.log, deps.coalesceMs);
  }

  // --- informer events -------------------------------------------------------

  upsertPolicy(policy: PolicyObject): void {
    this.cache.upsertPolicy(policy);
    this.namespaceChanged(policy.metadata.namespace!);
  }

  removePolicy(policy: PolicyObject): void {
    this.cache.removePolicy(policy);
    this.namespaceChanged(policy.metadata.namespace!);
  }

  upsertPod(pod: PodMeta): void {
    const key = podKey(pod);
    const before = this.pods.get(key);
    this.pods.set(key, pod);
    for (const p of [before, pod]) if (p) this.markResolution(this.cache.resolve(p));
    this.hub.refresh(key);
  }

  removePod(pod: PodMeta): void {
    const key = podKey(pod);
    this.pods.delete(key);
    this.hub.forget(key);
    this.deps.reports.forget(key);
    this.reportEvents.forget(key);
    this.markResolution(this.cache.resolve(pod));
  }

  /** Other replicas' recorded reports changed (a reports ConfigMap was added, changed or removed). */
  recordedReports(cm: V1ConfigMap, removed = false): void {
    for (const key of removed ? this.recorded.remove(cm) : this.recorded.upsert(cm)) {
      const pod = this.pods.get(key);
      if (pod) this.markResolution(this.cache.resolve(pod));
    }
  }

  /**
   * This replica became the leader (everything is reconciled, and Events are recorded only for
   * what happens from now on) or stopped leading (recordLiveReports).
   */
  leadershipChanged(leader: boolean): void {
    if (!leader) return this.recordLiveReports();
    this.reportEvents.startLeading();
    this.resyncAll();
  }

  /** Called when this replica stops leading: the new leader learns its sidecars' state from what this one records. */
  recordLiveReports(): void {
    for (const pod of this.hub.reportingPods()) this.deps.reports.save(pod, this.hub.latestReport(pod)!.report);
  }

  /** After a (re)list: everything may have changed while unwatched. */
  resyncAll(): void {
    for (const key of this.policies.keys()) this.mark(key);
    for (const pod of this.hub.connectedPods()) this.hub.refresh(pod);
  }

  // --- what each pod should run ----------------------------------------------

  /**
   * The policy a pod being created would get: from the caches (instant), or
   * from `among` (policies the caller listed itself, when the cache may not
   * have seen a policy applied together with its workload).
   */
  policyFor(pod: { metadata?: V1ObjectMeta }, namespace: string, among?: PolicyObject[]): { name: string; spec: PolicySpec } | undefined {
    return this.cache.policyFor(pod, namespace, among);
  }

  desired(pod: string): Desired {
    const object = this.pods.get(pod);
    if (!object) return { reason: `pod ${pod} is not known to the controller (not injected, or not yet seen)` };
    const resolution = this.cache.resolve(object);
    if (!resolution.policy) {
      return { reason: resolution.missingPin ? `pod pins policy ${resolution.missingPin}, which does not exist` : 'no ResiliencePolicy selects this pod' };
    }
    const policy = this.policies.get(resolution.policy)!;
    const refs = secretRefsOf(policy.spec);
    // A Secret the policy names that is being read for the first time holds the snapshot back (briefly: see secret-values.ts).
    const known = refs.length > 0 ? this.deps.credentials?.(policy.metadata.namespace!, refs) : undefined;
    // How many pods the policy selects, as its status (the leader's count, which every replica sees) says: the divisor
    // of a sidecar's local share of a fleet limit while the shared store is away.
    const targeted = policy.status?.pods?.targeted;
    const selectedPods = targeted !== undefined && targeted >= 1 ? Math.min(targeted, MAX_SELECTED_PODS) : undefined;
    return {
      snapshot: {
        version: { source: 'controller', policy: resolution.policy, generation: policy.metadata.generation ?? 0, hash: hashSpec(policy.spec), uid: policy.metadata.uid },
        spec: policy.spec,
        ...known?.fields,
        ...(selectedPods === undefined ? {} : { selectedPods }),
      },
      ...(known?.waiting && { waiting: true }),
    };
  }

  /** The Secrets (`namespace/name`) the pods connected here need. */
  *wantedSecrets(): Iterable<string> {
    for (const pod of this.hub.connectedPods()) {
      const policy = this.cache.policyOf(pod);
      if (policy) for (const ref of secretRefsOf(policy.spec)) yield `${policy.metadata.namespace}/${ref.name}`;
    }
  }

  /** A Secret of `namespace` changed: its connected pods are sent their snapshots again (only those whose credentials changed get one). */
  secretsChanged(namespace: string): void {
    for (const pod of this.hub.connectedPods()) if (pod.startsWith(`${namespace}/`)) this.hub.refresh(pod);
  }

  private onReport(pod: string, report: SidecarReport): void {
    const object = this.pods.get(pod);
    const policyKey = object && this.cache.resolve(object).policy;
    if (!policyKey) return;
    // The leader reads the reports that reach it; the others' reach it through their replicas' ConfigMaps.
    // Events wait for the leader's pass over the newest reports (reconcile), so no replica records one on receipt.
    if (!this.deps.isLeader()) this.deps.reports.save(pod, report);
    this.mark(policyKey);
  }

  // --- status ----------------------------------------------------------------

  private namespaceChanged(namespace: string): void {
    for (const key of this.policies.keys()) if (key.startsWith(`${namespace}/`)) this.mark(key);
    for (const pod of this.hub.connectedPods()) if (pod.startsWith(`${namespace}/`)) this.hub.refresh(pod);
  }

  private markResolution(resolution: Resolution): void {
    for (const key of [resolution.policy, ...resolution.conflicts]) if (key) this.mark(key);
  }

  private mark(key: string): void {
    this.dirty.mark(key);
  }

  /** Reconciles every dirty policy; one pass at a time. */
  flush(): Promise<void> {
    return this.dirty.flush();
  }

  private async reconcile(key: string): Promise<void> {
    const policy = this.policies.get(key);
    if (!policy || !this.deps.isLeader()) return;
    // One resolution per pod: which pods this policy targets, and which it selects but loses.
    const pods: { key: string; report: SidecarReport | undefined }[] = [];
    const conflicts: PolicyFacts['conflicts'] = [];
    const upstreams = new Set(policy.spec.upstreams.map((u) => u.name));
    for (const pod of this.pods.values()) {
      const r = this.cache.resolve(pod);
      if (r.policy === key && isLive(pod)) pods.push({ key: podKey(pod), report: this.newestReport(podKey(pod), upstreams) });
      if (r.conflicts.includes(key)) conflicts.push({ pod: podKey(pod), winner: r.policy! });
    }
    const target = { apiVersion: 'breakwater.dev/v1alpha1', kind: 'ResiliencePolicy', metadata: policy.metadata };
    for (const pod of pods) if (pod.report) this.reportEvents.observe(target, pod.key, pod.report);
    const now = (this.deps.now ?? Date.now)();
    const status = computeStatus(await policyFacts(this.deps.core, key, policy, conflicts), pods, policy.status, new Date(now).toISOString());
    // Written when it changed, and at least every observedRefreshMs so that observedAt tells a watched policy from a forsaken one.
    if (!statusDue(status, policy.status, now, this.deps.observedRefreshMs)) return;
    const updated = await writeStatus(this.deps.custom, policy, status);
    this.statusWrites++;
    // Keep the written status, so the next pass compares against it even before the watch event arrives.
    if (this.policies.get(key) === policy) this.policies.set(key, { ...policy, status: updated.status ?? status });
  }

  /** A pod's newest report: the one it sent here, or one another replica recorded. */
  private newestReport(pod: string, upstreams: ReadonlySet<string>): SidecarReport | undefined {
    const here = this.hub.latestReport(pod);
    const recorded = this.recorded.reportFor(pod, upstreams);
    return (here && recorded ? (recorded.at > here.at ? recorded : here) : (here ?? recorded))?.report;
  }

  /** Pod counts per policy, as its status says. */
  podCounts(): [string, NonNullable<PolicyStatus['pods']>][] {
    return [...this.policies].flatMap(([key, p]) => (p.status?.pods ? [[key, p.status.pods] as [string, NonNullable<PolicyStatus['pods']>]] : []));
  }

  /** Stops; resolves once the config streams are ended with their drain notice (or a second has passed). */
  close(): Promise<void> {
    this.dirty.close();
    const streamsEnded = this.hub.close();
    this.deps.reports.close();
    return streamsEnded;
  }
}
