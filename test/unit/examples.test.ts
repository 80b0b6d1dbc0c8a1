/** Every example under examples/ is exercised: policies validate, manifests hold a valid policy and a well-formed native sidecar. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { formatProblems, validatePolicy } from '../../api/index.js';

describe('examples/kubernetes/manual-sidecar.yaml', () => {
  const docs = parseAllDocuments(readFileSync(new URL('../../examples/kubernetes/manual-sidecar.yaml', import.meta.url), 'utf8')).map((d) => d.toJS());
  const configMap = docs.find((d) => d.kind === 'ConfigMap');
  const deployment = docs.find((d) => d.kind === 'Deployment');

  it('carries a valid policy in its ConfigMap', () => {
    const verdict = validatePolicy(parseAllDocuments(configMap.data['policy.yaml'])[0]!.toJS());
    assert.ok(verdict.ok, verdict.ok ? '' : formatProblems(verdict.problems));
  });

  it('runs the sidecar as a native sidecar the app reaches on loopback', () => {
    const pod = deployment.spec.template.spec;
    const sidecar = pod.initContainers[0];
    assert.equal(sidecar.restartPolicy, 'Always');
    assert.deepEqual(sidecar.args.slice(0, 3), ['sidecar', '--policy', '/etc/breakwater/policy.yaml']);
    assert.equal(sidecar.readinessProbe.httpGet.path, '/readyz');
    assert.equal(sidecar.securityContext.readOnlyRootFilesystem, true);
    const env = Object.fromEntries(pod.containers[0].env.map((e: { name: string; value: string }) => [e.name, e.value]));
    assert.equal(env.OPENAI_BASE_URL, 'http://127.0.0.1:15001/vllm/v1');
    assert.ok(pod.terminationGracePeriodSeconds >= 5 + 30, 'grace period covers preStop sleep and drainTimeout');
  });
});
