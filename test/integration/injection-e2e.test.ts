/**
 * Sidecar injection through a real kube-apiserver: the webhook is registered
 * with the real caBundle and the API server calls the controller over TLS
 * while pods are created, presenting its client certificate, which the
 * webhook requires (--webhook-client-ca).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { request } from 'node:https';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { V1Pod } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { issueServingCertificate, startControlPlane, type ControlPlane } from '../support/control-plane.js';
import { startCliProcess, type CliProcess } from '../support/sidecar-process.js';

const IMAGE = 'registry.example.com/breakwater:test';

describe('sidecar injection through a real API server', () => {
  let cp: ControlPlane;
  let controller: CliProcess;
  let ca: string;

  const kubectl = async (args: string[], input?: string) => {
    const r = await cp.kubectl(args, input);
    assert.equal(r.code, 0, `kubectl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  /** Creates a pod and returns it as the API server stored it. */
  const create = async (namespace: string, pod: object): Promise<V1Pod> => JSON.parse(await kubectl(['-n', namespace, 'create', '-o', 'json', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'Pod', ...pod })));
  const container = (name: string, env: { name: string; value: string }[] = []) => ({ name, image: 'app:1', env });

  before(async () => {
    cp = await startControlPlane();
    ca = join(cp.dir, 'ca.crt');
    await cp.installCrd();
    for (const ns of ['apps', 'plain', 'breakwater-system']) await kubectl(['create', 'namespace', ns]);
    await kubectl(['label', 'namespace', 'apps', 'breakwater.dev/inject=enabled']);
    await kubectl(['apply', '-f', '-'], stringify({
      apiVersion: 'breakwater.dev/v1alpha1',
      kind: 'ResiliencePolicy',
      metadata: { name: 'solo', namespace: 'plain' },
      spec: { podSelector: { matchLabels: { app: 'solo' } }, upstreams: [{ name: 'local', url: 'http://vllm.plain.svc:8000' }] },
    }));
    await kubectl(['apply', '-f', '-'], stringify({
      apiVersion: 'breakwater.dev/v1alpha1',
      kind: 'ResiliencePolicy',
      metadata: { name: 'chat', namespace: 'apps' },
      spec: {
        podSelector: { matchLabels: { app: 'chat' } },
        upstreams: [{ name: 'primary', url: 'https://api.openai.com', env: ['OPENAI_BASE_URL'], auth: { secretRef: { name: 'openai-key', key: 'apiKey' } } }],
        shutdown: { appPreStopSleep: '7s', drainTimeout: '40s' },
      },
    }));
    const tls = issueServingCertificate(cp.dir, 'controller');
    const args = ['controller', '--kubeconfig', cp.kubeconfig, '--tls-cert', tls.cert, '--tls-key', tls.key, '--config-listen', '127.0.0.1:0', '--health-listen', '127.0.0.1:0', '--webhook-listen', '127.0.0.1:0'];
    controller = await startCliProcess(
      undefined, // lives for the whole suite; stopped in after()
      [...args, '--sidecar-image', IMAGE, '--advertise-url', 'https://breakwater-controller.breakwater-system.svc:15443', '--ca-file', ca, '--webhook-client-ca', ca],
      'controller started',
    );
    const webhookUrl = `${controller.entry.webhookUrl as string}/mutate-pods`;
    await kubectl(['apply', '-f', '-'], stringify({
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'MutatingWebhookConfiguration',
      metadata: { name: 'breakwater' },
      webhooks: [{
        name: 'pods.breakwater.dev',
        admissionReviewVersions: ['v1'],
        sideEffects: 'None',
        failurePolicy: 'Ignore',
        timeoutSeconds: 5,
        reinvocationPolicy: 'IfNeeded',
        clientConfig: { url: webhookUrl, caBundle: readFileSync(ca).toString('base64') },
        rules: [{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'] }],
        namespaceSelector: { matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['kube-system', 'breakwater-system'] }] },
        objectSelector: { matchExpressions: [{ key: 'breakwater.dev/inject', operator: 'NotIn', values: ['false'] }] },
      }],
    }));
    // The API server picks webhook configurations up asynchronously.
    for (let i = 0; i < 100; i++) {
      const probe = await create('apps', { metadata: { generateName: 'probe-', labels: { app: 'chat' } }, spec: { containers: [container('app')] } });
      if (probe.spec?.initContainers?.length) break;
      await new Promise((r) => setTimeout(r, 100));
    }
  });
  after(async () => {
    controller?.child.kill('SIGKILL');
    await cp?.stop();
  });

  it('injects a Deployment-style pod (generateName) in a labelled namespace: sidecar, probes, env, preStop, grace period', async () => {
    const pod = await create('apps', {
      metadata: { generateName: 'chat-7d9f-', labels: { app: 'chat' } },
      spec: { containers: [container('app'), container('worker', [{ name: 'OPENAI_BASE_URL', value: 'http://mine' }])] },
    });
    const [sidecar] = pod.spec!.initContainers!;
    assert.equal(sidecar!.name, 'breakwater-sidecar');
    assert.equal(sidecar!.restartPolicy, 'Always');
    assert.equal(sidecar!.image, IMAGE);
    assert.equal(sidecar!.startupProbe!.httpGet!.path, '/readyz');
    assert.equal(sidecar!.livenessProbe!.httpGet!.path, '/healthz');
    assert.deepEqual(sidecar!.securityContext!.capabilities!.drop, ['ALL']);
    assert.equal(sidecar!.securityContext!.readOnlyRootFilesystem, true);
    const env = Object.fromEntries(sidecar!.env!.map((e) => [e.name, e]));
    assert.equal(env.POD_NAME!.valueFrom!.fieldRef!.fieldPath, 'metadata.name');
    assert.deepEqual(env.BREAKWATER_SECRET_OPENAI_KEY_APIKEY!.valueFrom!.secretKeyRef, { name: 'openai-key', key: 'apiKey', optional: true });
    const token = pod.spec!.volumes!.find((v) => v.name === 'breakwater-token')!;
    assert.equal(token.projected!.sources![0]!.serviceAccountToken!.audience, 'breakwater.dev');
    const [app, worker] = pod.spec!.containers;
    assert.deepEqual(app!.env, [{ name: 'OPENAI_BASE_URL', value: 'http://127.0.0.1:15001/primary/v1' }]);
    assert.deepEqual(worker!.env, [{ name: 'OPENAI_BASE_URL', value: 'http://mine' }], 'a value the user set is never overridden');
    assert.equal(app!.lifecycle!.preStop!.sleep!.seconds, 7);
    assert.ok(pod.spec!.terminationGracePeriodSeconds! >= 7 + 40);
    assert.equal(pod.metadata!.labels!['breakwater.dev/injected'], 'true');
    assert.deepEqual(JSON.parse(pod.metadata!.annotations!['breakwater.dev/status']!), { sidecar: 'breakwater-sidecar', image: IMAGE, policy: 'apps/chat', env: ['OPENAI_BASE_URL'] });
  });

  it('sets the sidecar\'s log level from the pod\'s breakwater.dev/log-level, and ignores a value that is no level', async () => {
    const levelOf = async (annotation: string | undefined) => {
      const annotations = annotation === undefined ? undefined : { 'breakwater.dev/log-level': annotation };
      const pod = await create('apps', { metadata: { generateName: 'chat-', labels: { app: 'chat' }, annotations }, spec: { containers: [container('app')] } });
      return pod.spec!.initContainers![0]!.env!.find((e) => e.name === 'BREAKWATER_LOG_LEVEL')?.value;
    };
    assert.equal(await levelOf('debug'), 'debug');
    assert.equal(await levelOf('warn'), 'warn');
    assert.equal(await levelOf('verbose; rm -rf /'), undefined);
    assert.equal(await levelOf(undefined), undefined, 'the sidecar\'s own default (info) unless the pod asks');
  });

  it('never overrides a base URL the app sets through envFrom (a ConfigMap, a Secret, with a prefix)', async () => {
    await kubectl(['-n', 'apps', 'create', 'configmap', 'app-settings', '--from-literal=OPENAI_BASE_URL=http://mine', '--from-literal=OTHER=1']);
    await kubectl(['-n', 'apps', 'create', 'secret', 'generic', 'app-secrets', '--from-literal=BASE_URL=http://mine-too']);
    await kubectl(['-n', 'apps', 'create', 'configmap', 'unrelated', '--from-literal=LOG_LEVEL=debug']);
    const pod = await create('apps', {
      metadata: { generateName: 'chat-envfrom-', labels: { app: 'chat' } },
      spec: {
        containers: [
          { ...container('from-configmap'), envFrom: [{ configMapRef: { name: 'app-settings' } }] },
          { ...container('from-secret-with-prefix'), envFrom: [{ secretRef: { name: 'app-secrets' }, prefix: 'OPENAI_' }] },
          { ...container('unrelated-envfrom'), envFrom: [{ configMapRef: { name: 'unrelated' } }, { configMapRef: { name: 'missing', optional: true } }] },
        ],
      },
    });
    const [fromConfigMap, fromSecret, unrelated] = pod.spec!.containers;
    assert.deepEqual(fromConfigMap!.env ?? [], [], 'OPENAI_BASE_URL comes from the ConfigMap');
    assert.deepEqual(fromSecret!.env ?? [], [], 'OPENAI_ + BASE_URL comes from the Secret');
    assert.deepEqual(unrelated!.env, [{ name: 'OPENAI_BASE_URL', value: 'http://127.0.0.1:15001/primary/v1' }], 'other envFrom sources do not stop injection');
  });

  it('leaves alone a pod that opts out, a hostNetwork pod, and pods in namespaces that did not opt in', async () => {
    const optedOut = await create('apps', { metadata: { name: 'opted-out', annotations: { 'breakwater.dev/inject': 'false' } }, spec: { containers: [container('app')] } });
    const hostNet = await create('apps', { metadata: { name: 'host-net' }, spec: { hostNetwork: true, containers: [container('app')] } });
    const plain = await create('plain', { metadata: { name: 'plain' }, spec: { containers: [container('app')] } });
    for (const pod of [optedOut, hostNet, plain]) {
      assert.equal(pod.spec!.initContainers, undefined, pod.metadata!.name);
      assert.equal(pod.metadata!.annotations?.['breakwater.dev/status'], undefined, pod.metadata!.name);
    }
    const optedIn = await create('plain', { metadata: { name: 'opted-in', labels: { 'breakwater.dev/inject': 'true', app: 'solo' } }, spec: { containers: [container('app')] } });
    assert.equal(optedIn.spec!.initContainers![0]!.name, 'breakwater-sidecar', 'a pod label opts in anywhere');
  });

  // Found on a real cluster: such a pod got a sidecar with no config to fetch, whose startup probe never passed, so its app never started.
  it('admits unchanged a pod that asks for Breakwater but that no policy selects, or that pins a policy that does not exist', async () => {
    const unselected = await create('apps', { metadata: { name: 'unselected', labels: { app: 'batch' } }, spec: { containers: [container('app')] } });
    const pinsMissing = await create('apps', { metadata: { name: 'pins-missing', labels: { app: 'chat' }, annotations: { 'breakwater.dev/policy': 'nope' } }, spec: { containers: [container('app')] } });
    for (const pod of [unselected, pinsMissing]) {
      assert.equal(pod.spec!.initContainers, undefined, pod.metadata!.name);
      assert.equal(pod.spec!.containers[0]!.env ?? undefined, undefined, pod.metadata!.name);
      assert.equal(pod.metadata!.labels!['breakwater.dev/injected'], undefined, pod.metadata!.name);
    }
    const selected = await create('apps', { metadata: { name: 'selected', labels: { app: 'chat' } }, spec: { containers: [container('app')] } });
    assert.equal(selected.spec!.initContainers![0]!.name, 'breakwater-sidecar', 'the same namespace and shape with a policy is injected');
  });

  /** The API server's webhook client certificate (control-plane.ts), which the test presents as the API server would. */
  const apiServerCert = () => ({ cert: readFileSync(join(cp.dir, 'webhook-client.crt')), key: readFileSync(join(cp.dir, 'webhook-client.key')) });

  /** POSTs an AdmissionReview to `base`/mutate-pods and returns the status and the parsed answer. */
  const review = (base: string, object: V1Pod, client: { cert?: Buffer; key?: Buffer } = apiServerCert()) =>
    new Promise<{ status: number; body: { response?: { allowed: boolean; patch?: string } } }>((resolve, reject) => {
      const body = { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: 'r-1', namespace: 'apps', object } };
      const req = request(`${base}/mutate-pods`, { method: 'POST', ca: readFileSync(ca), ...client, headers: { 'content-type': 'application/json' } }, (res) => {
        let text = '';
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) }));
      });
      req.on('error', reject);
      req.end(JSON.stringify(body));
    });

  it('changes nothing when the webhook sees an injected pod again', async () => {
    const injected = await create('apps', { metadata: { generateName: 'again-', labels: { app: 'chat' } }, spec: { containers: [container('app')] } });
    const { body } = await review(controller.entry.webhookUrl as string, injected);
    assert.equal(body.response!.allowed, true);
    assert.equal(body.response!.patch, undefined);
  });

  it('answers admission reviews only on the webhook port, never on the config port every sidecar reaches', async () => {
    const pod = { metadata: { name: 'x', namespace: 'apps', labels: { app: 'chat' } }, spec: { containers: [container('app')] } } as V1Pod;
    const onConfigPort = await review(controller.entry.configUrl as string, pod);
    assert.equal(onConfigPort.status, 404);
    assert.equal(onConfigPort.body.response, undefined, 'nothing about policies is revealed there');
    assert.equal((await review(controller.entry.webhookUrl as string, pod)).status, 200);
  });

  it('answers only callers whose client certificate the configured CA signed', async () => {
    const pod = { metadata: { name: 'x', namespace: 'apps', labels: { app: 'chat' } }, spec: { containers: [container('app')] } } as V1Pod;
    const webhook = controller.entry.webhookUrl as string;
    await assert.rejects(review(webhook, pod, {}), 'no client certificate: the handshake fails');
    const other = mkdtempSync(join(tmpdir(), 'breakwater-other-ca-'));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'k.pem', '-out', 'c.pem', '-days', '1', '-subj', '/CN=kube-apiserver-webhook-client'], { cwd: other, stdio: 'ignore' });
    await assert.rejects(review(webhook, pod, { cert: readFileSync(join(other, 'c.pem')), key: readFileSync(join(other, 'k.pem')) }), 'a certificate from another CA: the handshake fails');
    assert.equal((await review(webhook, pod)).status, 200);
  });

  it('still lets pods be created while the controller is down (failurePolicy Ignore)', async () => {
    controller.child.kill('SIGKILL');
    await controller.exited;
    const pod = await create('apps', { metadata: { generateName: 'while-down-', labels: { app: 'chat' } }, spec: { containers: [container('app')] } });
    assert.ok(pod.metadata!.name!.startsWith('while-down-'));
    assert.equal(pod.spec!.initContainers, undefined);
  });
});
