/**
 * Writing a policy's status, through the status subresource: when it
 * changed, and at least every observedRefreshMs besides, so that a growing
 * observedAt says no controller is watching.
 */
import type { CustomObjectsApi } from '@kubernetes/client-node';
import { canonicalJson } from '../api/index.js';
import type { PolicyStatus } from '../api/policy-status.js';
import { GROUP, type PolicyObject } from './policy-object.js';

/** By default a policy's status is written at least this often, for its observedAt. */
export const OBSERVED_REFRESH_MS = 5 * 60_000;

/** Whether `status` is to be written over `written` at wall-clock `now`: it changed, or `written` is older than `refreshMs`. */
export function statusDue(status: PolicyStatus, written: PolicyStatus | undefined, now: number, refreshMs = OBSERVED_REFRESH_MS): boolean {
  const fresh = now - Date.parse(written?.observedAt ?? '') < refreshMs;
  return !fresh || canonicalJson({ ...status, observedAt: undefined }) !== canonicalJson({ ...(written ?? {}), observedAt: undefined });
}

/** Writes `status` as `policy`'s; returns the object as the API server now has it. */
export async function writeStatus(custom: CustomObjectsApi, policy: PolicyObject, status: PolicyStatus): Promise<PolicyObject> {
  return (await custom.patchNamespacedCustomObjectStatus({
    ...GROUP,
    namespace: policy.metadata.namespace!,
    name: policy.metadata.name!,
    body: [{ op: 'add', path: '/status', value: status }],
  })) as PolicyObject;
}
