/**
 * The controller's level-based core. Informers keep caches of policies and of
 * injected pods; sidecars' reports arrive through the config hub. The leader
 * uses its own sidecars' reports as they arrive; other replicas record theirs
 * in ConfigMaps of the controller's namespace (report-store.ts), which the
 * leader watches. Any change
 * marks the affected policies dirty; a coalescing loop then recomputes each
 * one's status from the caches alone (so the outcome does not depend on the
 * order of events, and is the same after a restart) and writes it through the
 * status subresource only when it changed. Pods are re-sent their config
 * whenever what they should run changes. The Events reports call for are
 * recorded in the same pass, by the leader alone (report-events.ts).
 */
import type { CoreV1Api, CustomObjectsApi, KubernetesObject, V1ConfigMap, V1ObjectMeta } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { canonicalJson, formatProblems, hashSpec, validatePolicy, type PolicySpec, type SidecarReport } from '../api/index.js';
import type { PolicyStatus } from '../api/policy-status.js';
import { ConfigHub, type Desired } from './config-hub.js';
import type { EventRecorder } from './event-recorder.js';
import { computeStatus, type PolicyFacts } from './policy-status.js';
import { keyOf, resolvePod, type PodRef, type PolicyRef, type Resolution } from './policy-resolution.js';
import { ReportEvents } from './report-events.js';
import { credentialIn, secretReader, secretRefsOf, type PolicyCredentials, type SecretRead, type SecretRef } from './secret-values.js';
import { RecordedReports, type ReportRecorder } from './report-store.js';

export const GROUP = { group: 'breakwater.dev', version: 'v1alpha1', plural: 'resiliencepolicies' };

/** By default a policy's status is written at least this often, for its observedAt. */
const OBSERVED_REFRESH_MS = 5 * 60_000;

export interface PolicyObject extends KubernetesObject {
  metadata: V1ObjectMeta;
  spec: PolicySpec;
  status?: PolicyStatus;
}

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

/** A pod as the controller keeps it: its metadata (the watch asks for nothing else, and only for pods not finished). */
type PodMeta = { metadata: V1ObjectMeta };

const podKey = (pod: PodMeta) => `${pod.metadata.namespace}/${pod.metadata.name}`;
const isLive = (pod: PodMeta) => !pod.metadata.deletionTimestamp;

function policyRef(p: PolicyObject): PolicyRef {
  return { namespace: p.metadata.namespace!, name: p.metadata.name!, createdAt: new Date(p.metadata.creationTimestamp ?? 0).toISOString(), podSelector: p.spec.podSelector };
}

function podRef(pod: PodMeta): PodRef {
  return { namespace: pod.metadata.namespace!, name: pod.metadata.name!, labels: pod.metadata.labels ?? {}, annotations: pod.metadata.annotations ?? {} };
}

export class Reconciler {
  readonly hub: ConfigHub;
  private readonly policies = new Map<string, PolicyObject>();
  /** What resolution needs of each policy; rebuilt only when a policy is added, changed or removed. */
  private refs: PolicyRef[] | undefined;
  private readonly pods = new Map<string, PodMeta>();
  private readonly recorded = new RecordedReports();
  private readonly reportEvents: ReportEvents;
  private readonly dirty = new Set<string>();
  private flushing: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  statusWrites = 0;

  constructor(private readonly deps: ReconcilerDeps) {
    this.hub = new ConfigHub(
      (pod) => this.desired(pod),
      (pod) => new Set(this.policyOf(pod)?.spec.upstreams.map((u) => u.name)),
      (pod, report) => this.onReport(pod, report),
    );
    this.reportEvents = new ReportEvents(deps.events, deps.now);
  }

  // --- informer events -------------------------------------------------------

  upsertPolicy(policy: PolicyObject): void {
    this.policies.set(keyOf(policyRef(policy)), policy);
    this.refs = undefined;
    this.namespaceChanged(policy.metadata.namespace!);
  }

  removePolicy(policy: PolicyObject): void {
    this.policies.delete(keyOf(policyRef(policy)));
    this.refs = undefined;
    this.namespaceChanged(policy.metadata.namespace!);
  }

  upsertPod(pod: PodMeta): void {
    const key = podKey(pod);
    const before = this.pods.get(key);
    this.pods.set(key, pod);
    for (const p of [before, pod]) if (p) this.markResolution(this.resolve(p));
    this.hub.refresh(key);
  }

  removePod(pod: PodMeta): void {
    const key = podKey(pod);
    this.pods.delete(key);
    this.hub.forget(key);
    this.deps.reports.forget(key);
    this.reportEvents.forget(key);
    this.markResolution(this.resolve(pod));
  }

  /** Other replicas' recorded reports changed (a reports ConfigMap was added, changed or removed). */
  recordedReports(cm: V1ConfigMap, removed = false): void {
    for (const key of removed ? this.recorded.remove(cm) : this.recorded.upsert(cm)) {
      const pod = this.pods.get(key);
      if (pod) this.markResolution(this.resolve(pod));
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

  private policyRefs(): PolicyRef[] {
    return (this.refs ??= [...this.policies.values()].map(policyRef));
  }

  private resolve(pod: PodMeta): Resolution {
    return resolvePod(podRef(pod), this.policyRefs());
  }

  /**
   * The policy a pod being created would get: from the caches (instant), or
   * from `among` (policies the caller listed itself, when the cache may not
   * have seen a policy applied together with its workload).
   */
  policyFor(pod: { metadata?: V1ObjectMeta }, namespace: string, among?: PolicyObject[]): { name: string; spec: PolicySpec } | undefined {
    const ref = { namespace, name: pod.metadata?.name ?? '', labels: pod.metadata?.labels ?? {}, annotations: pod.metadata?.annotations ?? {} };
    const policies = among ? new Map(among.map((p) => [keyOf(policyRef(p)), p])) : this.policies;
    const key = resolvePod(ref, among ? among.map(policyRef) : this.policyRefs()).policy;
    const policy = key ? policies.get(key) : undefined;
    if (!policy) return undefined;
    // The API server keeps what the user wrote; injection reads the policy with this release's defaults in.
    const verdict = validatePolicy(policy.spec);
    return { name: key!, spec: verdict.ok ? verdict.spec : policy.spec };
  }

  desired(pod: string): Desired {
    const object = this.pods.get(pod);
    if (!object) return { reason: `pod ${pod} is not known to the controller (not injected, or not yet seen)` };
    const resolution = this.resolve(object);
    if (!resolution.policy) {
      return { reason: resolution.missingPin ? `pod pins policy ${resolution.missingPin}, which does not exist` : 'no ResiliencePolicy selects this pod' };
    }
    const policy = this.policies.get(resolution.policy)!;
    const refs = secretRefsOf(policy.spec);
    // A Secret the policy names that is being read for the first time holds the snapshot back (briefly: see secret-values.ts).
    const known = refs.length > 0 ? this.deps.credentials?.(policy.metadata.namespace!, refs) : undefined;
    return {
      snapshot: {
        version: { source: 'controller', policy: resolution.policy, generation: policy.metadata.generation ?? 0, hash: hashSpec(policy.spec), uid: policy.metadata.uid },
        spec: policy.spec,
        ...known?.fields,
      },
      ...(known?.waiting && { waiting: true }),
    };
  }

  /** The policy a pod runs, if any. */
  private policyOf(pod: string): PolicyObject | undefined {
    const object = this.pods.get(pod);
    const key = object && this.resolve(object).policy;
    return key ? this.policies.get(key) : undefined;
  }

  /** The Secrets (`namespace/name`) the pods connected here need. */
  *wantedSecrets(): Iterable<string> {
    for (const pod of this.hub.connectedPods()) {
      const policy = this.policyOf(pod);
      if (policy) for (const ref of secretRefsOf(policy.spec)) yield `${policy.metadata.namespace}/${ref.name}`;
    }
  }

  /** A Secret of `namespace` changed: its connected pods are sent their snapshots again (only those whose credentials changed get one). */
  secretsChanged(namespace: string): void {
    for (const pod of this.hub.connectedPods()) if (pod.startsWith(`${namespace}/`)) this.hub.refresh(pod);
  }

  private onReport(pod: string, report: SidecarReport): void {
    const object = this.pods.get(pod);
    const policyKey = object && this.resolve(object).policy;
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
    this.dirty.add(key);
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, this.deps.coalesceMs ?? 250);
  }

  /** Reconciles every dirty policy; one pass at a time. */
  flush(): Promise<void> {
    this.flushing ??= (async () => {
      const keys = [...this.dirty];
      this.dirty.clear();
      for (const key of keys) {
        try {
          await this.reconcile(key);
        } catch (err) {
          this.deps.log.warn({ policy: key, err: (err as Error).message }, 'reconcile failed; retrying');
          setTimeout(() => this.mark(key), 1000).unref();
        }
      }
    })().finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  private async facts(key: string, policy: PolicyObject, conflicts: PolicyFacts['conflicts']): Promise<PolicyFacts> {
    const generation = policy.metadata.generation ?? 0;
    const version = { source: 'controller' as const, policy: key, generation, hash: hashSpec(policy.spec), uid: policy.metadata.uid };
    const verdict = validatePolicy(policy.spec);
    if (!verdict.ok) return { generation, version, conflicts, problem: { reason: 'InvalidSpec', message: formatProblems(verdict.problems) } };
    // Every Secret key the policy names (an upstream's auth, the shared cache's password) must give a credential the sidecars can use,
    // by the rule they apply themselves (api/credential-value.ts): the Secret labelled for Breakwater, the key there, its value usable.
    const read = secretReader(this.deps.core);
    const secrets = new Map<string, Promise<SecretRead>>();
    for (const ref of secretRefsOf(policy.spec)) {
      if (!secrets.has(ref.name)) secrets.set(ref.name, read(policy.metadata.namespace!, ref.name));
      const found = credentialIn(await secrets.get(ref.name)!, ref.key);
      if (found.problem) return { generation, version, conflicts, problem: { reason: found.problem.reason, message: `${ref.usedBy}: Secret ${ref.name}, key ${ref.key} ${found.problem.says}` } };
    }
    return { generation, version, conflicts, slo: verdict.spec.slo };
  }

  private async reconcile(key: string): Promise<void> {
    const policy = this.policies.get(key);
    if (!policy || !this.deps.isLeader()) return;
    // One resolution per pod: which pods this policy targets, and which it selects but loses.
    const pods: { key: string; report: SidecarReport | undefined }[] = [];
    const conflicts: PolicyFacts['conflicts'] = [];
    const upstreams = new Set(policy.spec.upstreams.map((u) => u.name));
    for (const pod of this.pods.values()) {
      const r = this.resolve(pod);
      if (r.policy === key && isLive(pod)) pods.push({ key: podKey(pod), report: this.newestReport(podKey(pod), upstreams) });
      if (r.conflicts.includes(key)) conflicts.push({ pod: podKey(pod), winner: r.policy! });
    }
    const target = { apiVersion: 'breakwater.dev/v1alpha1', kind: 'ResiliencePolicy', metadata: policy.metadata };
    for (const pod of pods) if (pod.report) this.reportEvents.observe(target, pod.key, pod.report);
    const now = (this.deps.now ?? Date.now)();
    const status = computeStatus(await this.facts(key, policy, conflicts), pods, policy.status, new Date(now).toISOString());
    // Written when it changed, and at least every observedRefreshMs so that observedAt tells a watched policy from a forsaken one.
    const fresh = now - Date.parse(policy.status?.observedAt ?? '') < (this.deps.observedRefreshMs ?? OBSERVED_REFRESH_MS);
    if (fresh && canonicalJson({ ...status, observedAt: undefined }) === canonicalJson({ ...(policy.status ?? {}), observedAt: undefined })) return;
    const updated = (await this.deps.custom.patchNamespacedCustomObjectStatus({
      ...GROUP,
      namespace: policy.metadata.namespace!,
      name: policy.metadata.name!,
      body: [{ op: 'add', path: '/status', value: status }],
    })) as PolicyObject;
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

  close(): void {
    clearTimeout(this.timer);
    this.hub.close();
    this.deps.reports.close();
  }
}
