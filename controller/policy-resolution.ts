/**
 * Which policy a pod gets (contract, "Pods"): the one its annotation
 * `breakwater.dev/policy` names; otherwise the oldest policy in its namespace
 * whose podSelector matches it. Policies that also match but lose are reported
 * as conflicts. A policy without a podSelector selects only pods that pin it.
 * Pure: the same answer whatever order objects arrived in.
 */
import { selectorMatches, type LabelSelector } from './label-selector.js';

export const POLICY_ANNOTATION = 'breakwater.dev/policy';

export interface PolicyRef {
  namespace: string;
  name: string;
  /** RFC 3339 creation time; ties are broken by name. */
  createdAt: string;
  podSelector?: LabelSelector;
}

export interface PodRef {
  namespace: string;
  name: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

export interface Resolution {
  /** `namespace/name` of the winning policy, if any. */
  policy?: string;
  /** Policies that also select the pod but lost to `policy`. */
  conflicts: string[];
  /** Set when the pod pins a policy that does not exist. */
  missingPin?: string;
}

export const keyOf = (o: { namespace: string; name: string }) => `${o.namespace}/${o.name}`;

const older = (a: PolicyRef, b: PolicyRef) => a.createdAt.localeCompare(b.createdAt) || a.name.localeCompare(b.name);

export function resolvePod(pod: PodRef, policies: Iterable<PolicyRef>): Resolution {
  const inNamespace = [...policies].filter((p) => p.namespace === pod.namespace);
  const pinned = pod.annotations[POLICY_ANNOTATION];
  if (pinned !== undefined) {
    const policy = inNamespace.find((p) => p.name === pinned);
    return policy ? { policy: keyOf(policy), conflicts: [] } : { conflicts: [], missingPin: `${pod.namespace}/${pinned}` };
  }
  const matching = inNamespace.filter((p) => p.podSelector !== undefined && selectorMatches(p.podSelector, pod.labels)).sort(older);
  if (matching.length === 0) return { conflicts: [] };
  return { policy: keyOf(matching[0]!), conflicts: matching.slice(1).map(keyOf) };
}
