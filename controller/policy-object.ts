/**
 * Policies and pods as the controller keeps them from its watches, and what
 * policy resolution (policy-resolution.ts) needs of each.
 */
import type { KubernetesObject, V1ObjectMeta } from '@kubernetes/client-node';
import type { PolicySpec } from '../api/index.js';
import type { PolicyStatus } from '../api/policy-status.js';
import type { PodRef, PolicyRef } from './policy-resolution.js';

export const GROUP = { group: 'breakwater.dev', version: 'v1alpha1', plural: 'resiliencepolicies' };

export interface PolicyObject extends KubernetesObject {
  metadata: V1ObjectMeta;
  spec: PolicySpec;
  status?: PolicyStatus;
}

/** A pod as the controller keeps it: its metadata (the watch asks for nothing else, and only for pods not finished). */
export type PodMeta = { metadata: V1ObjectMeta };

export const podKey = (pod: PodMeta) => `${pod.metadata.namespace}/${pod.metadata.name}`;
export const isLive = (pod: PodMeta) => !pod.metadata.deletionTimestamp;

export function policyRef(p: PolicyObject): PolicyRef {
  return { namespace: p.metadata.namespace!, name: p.metadata.name!, createdAt: new Date(p.metadata.creationTimestamp ?? 0).toISOString(), podSelector: p.spec.podSelector };
}

export function podRef(pod: PodMeta): PodRef {
  return { namespace: pod.metadata.namespace!, name: pod.metadata.name!, labels: pod.metadata.labels ?? {}, annotations: pod.metadata.annotations ?? {} };
}
