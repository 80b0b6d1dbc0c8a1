/**
 * The Helm chart against a real API server: it lints, its rendered manifests
 * are accepted by a server-side dry run, its RBAC grants what the controller
 * needs and nothing it must not have, and an upgrade keeps the generated
 * certificates (so the webhook's caBundle and the sidecars' trust stay valid).
 * helm comes from $HELM, or scripts/build-helm.sh builds it from its Go module once.
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { startControlPlane, type ControlPlane } from '../support/control-plane.js';

const CHART = fileURLToPath(new URL('../../charts/breakwater', import.meta.url));
const NS = 'breakwater-system';
const SA = `system:serviceaccount:${NS}:bw-breakwater`;
const NETWORK_POLICY = ['--set', 'networkPolicy.enabled=true', '--set', 'networkPolicy.webhookFrom[0].ipBlock.cidr=10.0.0.0/24'];
const CLIENT_CA = ['--set-string', 'webhook.clientCA=-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n'];
const ALL_FEATURES = [...CLIENT_CA, '--set', 'certManager.enabled=true', '--set', 'metrics.serviceMonitor.enabled=true', '--set', 'metrics.prometheusRule.enabled=true', '--set', 'metrics.grafanaDashboard.enabled=true', ...NETWORK_POLICY];

const helmBinary = () => process.env.HELM ?? execFileSync('bash', [fileURLToPath(new URL('../../scripts/build-helm.sh', import.meta.url))], { encoding: 'utf8' }).trim().split('\n').at(-1)!;

describe('Helm chart on a real API server', () => {
  let cp: ControlPlane;
  let helmPath: string;
  const helm = (args: string[]) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
      execFile(helmPath, [...args, '--kubeconfig', cp.kubeconfig], { encoding: 'utf8', maxBuffer: 1 << 26 }, (err, stdout, stderr) => resolve({ code: err ? 1 : 0, stdout, stderr })),
    );
  const render = async (extra: string[] = []) => {
    const r = await helm(['template', 'bw', CHART, '-n', NS, '--kube-version', '1.37.2', ...extra]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout;
  };
  const kinds = (yaml: string) => parseAllDocuments(yaml).map((d) => d.toJS()).filter(Boolean) as { kind: string; metadata: { name: string } }[];

  before(async () => {
    helmPath = helmBinary();
    cp = await startControlPlane();
    assert.equal((await cp.kubectl(['create', 'namespace', NS])).code, 0);
  });
  after(() => cp?.stop());

  it('lints, with defaults and with every feature on', async () => {
    for (const extra of [[], ALL_FEATURES]) {
      const r = await helm(['lint', CHART, ...extra]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
    }
    const features = kinds(await render(ALL_FEATURES)).map((d) => d.kind);
    for (const kind of ['Certificate', 'Issuer', 'ServiceMonitor', 'PodMonitor', 'PrometheusRule', 'ConfigMap', 'NetworkPolicy']) assert.ok(features.includes(kind), kind);
  });

  it('serves the webhook on its own port, which the NetworkPolicy opens only to webhookFrom', async () => {
    const docs = parseAllDocuments(await render(NETWORK_POLICY)).map((d) => d.toJS()).filter(Boolean) as Record<string, any>[];
    const webhook = docs.find((d) => d.kind === 'MutatingWebhookConfiguration')!;
    assert.equal(webhook.webhooks[0].clientConfig.service.port, 15444);
    const policy = docs.find((d) => d.kind === 'NetworkPolicy')!;
    const rule = (port: number) => policy.spec.ingress.find((r: { ports: { port: number }[] }) => r.ports[0]!.port === port);
    assert.deepEqual(rule(15443).from, [{ namespaceSelector: {} }], 'every sidecar reaches its config stream');
    assert.deepEqual(rule(15444).from, [{ ipBlock: { cidr: '10.0.0.0/24' } }], 'only the API server reaches the webhook');
    const r = await cp.kubectl(['apply', '--dry-run=server', '-n', 'default', '-f', '-'], JSON.stringify({ ...policy, metadata: { ...policy.metadata, namespace: 'default' } }));
    assert.equal(r.code, 0, r.stderr);
  });

  it('spreads the replicas over nodes as controller.antiAffinity says: preferred by default, required, or none', async () => {
    const affinity = async (extra: string[]) =>
      (parseAllDocuments(await render(extra)).map((d) => d.toJS()).find((d) => d?.kind === 'Deployment') as Record<string, any>).spec.template.spec.affinity;
    const term = { topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: { 'app.kubernetes.io/name': 'breakwater', 'app.kubernetes.io/instance': 'bw', 'app.kubernetes.io/component': 'controller' } } };
    assert.deepEqual(await affinity([]), { podAntiAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 100, podAffinityTerm: term }] } });
    assert.deepEqual(await affinity(['--set', 'controller.antiAffinity=required']), { podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [term] } });
    assert.equal(await affinity(['--set', 'controller.antiAffinity=none']), undefined);
    const wrong = await helm(['template', 'bw', CHART, '--kube-version', '1.37.2', '--set', 'controller.antiAffinity=sometimes']);
    assert.match(wrong.stderr, /controller.antiAffinity must be preferred, required or none/);
  });

  it("runs the controller as the image's entrypoint with controller.nodeFlags after node (lite mode by default), or the image's own command", async () => {
    const command = async (extra: string[]) =>
      (parseAllDocuments(await render(extra)).map((d) => d.toJS()).find((d) => d?.kind === 'Deployment') as Record<string, any>).spec.template.spec.containers[0].command as string[] | undefined;
    const [node, script] = JSON.parse(/^ENTRYPOINT (.+)$/m.exec(readFileSync(new URL('../../Dockerfile', import.meta.url), 'utf8'))![1]!) as string[];
    assert.deepEqual(await command([]), [node, '--lite-mode', script]);
    assert.deepEqual(await command(['--set', 'controller.nodeFlags={--lite-mode,--stack-size=2048}']), [node, '--lite-mode', '--stack-size=2048', script]);
    assert.equal(await command(['--set', 'controller.nodeFlags=null']), undefined, 'no flags: the image\'s ENTRYPOINT runs as it is');
  });

  it('requires the API server\'s client certificate on the webhook when webhook.clientCA is set', async () => {
    const docs = (yaml: string) => parseAllDocuments(yaml).map((d) => d.toJS()).filter(Boolean) as Record<string, any>[];
    const args = (all: Record<string, any>[]) => all.find((d) => d.kind === 'Deployment')!.spec.template.spec.containers[0].args as string[];
    assert.ok(!args(docs(await render())).some((a) => a.startsWith('--webhook-client-ca')), 'off by default');
    const on = docs(await render(CLIENT_CA));
    assert.ok(args(on).includes('--webhook-client-ca=/webhook-client-ca/ca.crt'));
    const ca = on.find((d) => d.kind === 'ConfigMap' && d.metadata.name.endsWith('-webhook-client-ca'))!;
    assert.match(ca.data['ca.crt'], /BEGIN CERTIFICATE/);
  });

  it('renders manifests the API server accepts (server-side dry run): CRD, RBAC, webhook, Deployment, PDB', async () => {
    const manifests = await render(['--include-crds']);
    assert.deepEqual(
      kinds(manifests).map((d) => d.kind).sort(),
      ['ClusterRole', 'ClusterRoleBinding', 'CustomResourceDefinition', 'Deployment', 'MutatingWebhookConfiguration', 'PodDisruptionBudget', 'Role', 'RoleBinding', 'Secret', 'Service', 'ServiceAccount'],
    );
    const r = await cp.kubectl(['apply', '--dry-run=server', '-f', '-'], manifests);
    assert.equal(r.code, 0, r.stderr);
    for (const kind of ['customresourcedefinition', 'clusterrole', 'mutatingwebhookconfiguration', 'deployment', 'poddisruptionbudget']) {
      assert.match(r.stdout, new RegExp(`^${kind}\\.\\S+/\\S+ (created|configured) \\(server dry run\\)$`, 'm'), kind);
    }
  });

  it('grants the controller what it needs and not what it must not have', async () => {
    // can-i resolves resource names through discovery, so the CRD must exist.
    await cp.installCrd();
    const rbac = kinds(await render()).filter((d) => ['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding'].includes(d.kind));
    const applied = await cp.kubectl(['apply', '-f', '-'], rbac.map((d) => JSON.stringify(d)).join('\n'));
    assert.equal(applied.code, 0, applied.stderr);
    const can = async (args: string[]) => (await cp.kubectl(['auth', 'can-i', `--as=${SA}`, ...args])).stdout.trim();
    const allowed: string[][] = [
      ['list', 'pods', '--all-namespaces'],
      ['watch', 'pods', '--all-namespaces'],
      ['watch', 'resiliencepolicies.breakwater.dev', '--all-namespaces'],
      ['patch', 'resiliencepolicies.breakwater.dev', '--subresource=status', '-n', 'apps'],
      ['get', 'secrets', '-n', 'apps'],
      ['get', 'configmaps', '-n', 'apps'],
      ['get', 'namespaces'],
      ['create', 'tokenreviews.authentication.k8s.io'],
      ['create', 'events', '-n', 'apps'],
      ['create', 'leases.coordination.k8s.io', '-n', NS],
      ['update', 'leases.coordination.k8s.io', '-n', NS],
      ['watch', 'configmaps', '-n', NS],
      ['create', 'configmaps', '-n', NS],
      ['patch', 'configmaps', '-n', NS],
    ];
    const denied: string[][] = [
      ['list', 'secrets', '--all-namespaces'],
      ['watch', 'secrets', '-n', 'apps'],
      ['list', 'configmaps', '-n', 'apps'],
      ['patch', 'configmaps', '-n', 'apps'],
      ['patch', 'pods', '-n', 'apps'], // sidecar reports are not recorded where pod owners could forge them
      ['delete', 'pods', '-n', 'apps'],
      ['create', 'pods', '-n', 'apps'],
      ['update', 'resiliencepolicies.breakwater.dev', '-n', 'apps'],
      ['create', 'leases.coordination.k8s.io', '-n', 'apps'],
      ['create', 'serviceaccounts/token', '-n', 'apps'],
      ['update', 'mutatingwebhookconfigurations.admissionregistration.k8s.io'],
    ];
    for (const args of allowed) assert.equal(await can(args), 'yes', `should be allowed: ${args.join(' ')}`);
    for (const args of denied) assert.equal(await can(args), 'no', `should be denied: ${args.join(' ')}`);
  });

  it('installs, and keeps its certificates and the webhook caBundle across an upgrade', async () => {
    // A release of its own, apart from the objects the RBAC test applied by hand.
    assert.equal((await cp.kubectl(['create', 'namespace', 'bw-install'])).code, 0);
    const installed = await helm(['upgrade', '--install', 'rel', CHART, '-n', 'bw-install', '--set', 'image.repository=registry.example.com/breakwater']);
    assert.equal(installed.code, 0, installed.stderr);
    assert.match(installed.stdout, /kubectl label namespace <ns> breakwater\.dev\/inject=enabled/, 'NOTES.txt tells what to do next');
    const state = async () => {
      const secret = JSON.parse((await cp.kubectl(['-n', 'bw-install', 'get', 'secret', 'rel-breakwater-tls', '-o', 'json'])).stdout);
      const webhook = JSON.parse((await cp.kubectl(['get', 'mutatingwebhookconfiguration', 'rel-breakwater', '-o', 'json'])).stdout);
      return { ca: secret.data['ca.crt'] as string, cert: secret.data['tls.crt'] as string, caBundle: webhook.webhooks[0].clientConfig.caBundle as string };
    };
    const before = await state();
    assert.equal(before.caBundle, before.ca, 'the webhook trusts the CA that signed the serving certificate');
    const upgraded = await helm(['upgrade', 'rel', CHART, '-n', 'bw-install', '--reuse-values', '--set', 'controller.replicas=3']);
    assert.equal(upgraded.code, 0, upgraded.stderr);
    assert.deepEqual(await state(), before);
    assert.equal(JSON.parse((await cp.kubectl(['-n', 'bw-install', 'get', 'deployment', 'rel-breakwater', '-o', 'json'])).stdout).spec.replicas, 3);
  });
});
