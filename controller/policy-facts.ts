/**
 * What a policy's status is computed from besides its pods' reports
 * (policy-status.ts): its version, whether its spec is valid (and the valid
 * spec, whose SLOs, budgets and shared store the status shows), and whether
 * every Secret key it names gives a credential its sidecars can use.
 */
import type { CoreV1Api } from '@kubernetes/client-node';
import { formatProblems, hashSpec, ProblemReason, validatePolicy } from '../api/index.js';
import type { PolicyObject } from './policy-object.js';
import type { PolicyFacts } from './policy-status.js';
import { credentialIn, secretReader, secretRefsOf, type SecretRead } from './secret-values.js';

export async function policyFacts(core: CoreV1Api, key: string, policy: PolicyObject, conflicts: PolicyFacts['conflicts']): Promise<PolicyFacts> {
  const generation = policy.metadata.generation ?? 0;
  const version = { source: 'controller' as const, policy: key, generation, hash: hashSpec(policy.spec), uid: policy.metadata.uid };
  const verdict = validatePolicy(policy.spec);
  if (!verdict.ok) return { generation, version, conflicts, problem: { reason: ProblemReason.InvalidSpec, message: formatProblems(verdict.problems) } };
  // Every Secret key the policy names (an upstream's auth, the shared cache's password) must give a credential the sidecars can use,
  // by the rule they apply themselves (api/credential-value.ts): the Secret labelled for Breakwater, the key there, its value usable.
  const read = secretReader(core);
  const secrets = new Map<string, Promise<SecretRead>>();
  for (const ref of secretRefsOf(policy.spec)) {
    if (!secrets.has(ref.name)) secrets.set(ref.name, read(policy.metadata.namespace!, ref.name));
    const found = credentialIn(await secrets.get(ref.name)!, ref.key);
    if (found.problem) return { generation, version, conflicts, problem: { reason: found.problem.reason, message: `${ref.usedBy}: Secret ${ref.name}, key ${ref.key} ${found.problem.says}` } };
  }
  return { generation, version, conflicts, slo: verdict.spec.slo, spec: verdict.spec };
}
