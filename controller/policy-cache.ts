/**
 * What the controller's watches say of policies and pods, and which policy
 * each pod gets (policy-resolution.ts): the caches the reconciler computes
 * everything from, so its outcome does not depend on the order of events.
 */
import type { V1ObjectMeta } from '@kubernetes/client-node';
import { validatePolicy, type PolicySpec } from '../api/index.js';
import { podRef, policyRef, type PodMeta, type PolicyObject } from './policy-object.js';
import { keyOf, resolvePod, type PolicyRef, type Resolution } from './policy-resolution.js';

export class PolicyCache {
  readonly policies = new Map<string, PolicyObject>();
  /** Pods by `namespace/name`. */
  readonly pods = new Map<string, PodMeta>();
  /** What resolution needs of each policy; rebuilt only when a policy is added, changed or removed. */
  private refs: PolicyRef[] | undefined;

  upsertPolicy(policy: PolicyObject): void {
    this.policies.set(keyOf(policyRef(policy)), policy);
    this.refs = undefined;
  }

  removePolicy(policy: PolicyObject): void {
    this.policies.delete(keyOf(policyRef(policy)));
    this.refs = undefined;
  }

  private policyRefs(): PolicyRef[] {
    return (this.refs ??= [...this.policies.values()].map(policyRef));
  }

  resolve(pod: PodMeta): Resolution {
    return resolvePod(podRef(pod), this.policyRefs());
  }

  /** The policy a pod runs, if any. */
  policyOf(pod: string): PolicyObject | undefined {
    const object = this.pods.get(pod);
    const key = object && this.resolve(object).policy;
    return key ? this.policies.get(key) : undefined;
  }

  /** The policy a pod being created would get, from these caches or from `among` (see Reconciler.policyFor). */
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
}
