/**
 * End to end on a real kube-apiserver: the CRD and a policy are applied, pods
 * that it selects are created (the test plays the kubelet: it sets them
 * Running), real sidecar processes stand in for those pods with real
 * pod-bound TokenRequest tokens, and a real controller process pushes the
 * policy to them and reports the truth in status.
 */
import assert from 'node:assert/strict';
import { createSign } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { stringify } from 'yaml';
import { MockUpstream } from '../../sidecar/mock-upstream/mock-upstream.js';
import { chat, post } from '../support/harness.js';
import { issueServingCertificate, startControlPlane, type ControlPlane } from '../support/control-plane.js';
import { cliResult, startCliProcess, startSidecarProcess, type CliProcess, type SidecarProcess } from '../support/sidecar-process.js';

const NS = 'shop';

async function until<T>(what: string, check: () => Promise<T | undefined | false>, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const policy = (upstreamUrl: string, attempts: number) => ({
  apiVersion: 'breakwater.dev/v1alpha1',
  kind: 'ResiliencePolicy',
  metadata: { name: 'chat', namespace: NS },
  spec: {
    podSelector: { matchLabels: { app: 'chatbot' } },
    upstreams: [{ name: 'primary', url: upstreamUrl, retry: { attempts, backoff: { base: '10ms', max: '20ms' } }, circuitBreaker: { consecutiveFailures: 3, openFor: '10m' } }],
  },
});

const pod = (name: string) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace: NS, labels: { app: 'chatbot', 'breakwater.dev/injected': 'true' } },
  spec: { serviceAccountName: 'chatbot', containers: [{ name: 'app', image: 'registry.example.com/chatbot:1' }] },
});

/** A service-account JWT signed with the cluster's own key but already expired. */
function expiredToken(cp: ControlPlane, podName: string, podUid: string): string {
  const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const body = `${b64({ alg: 'RS256', typ: 'JWT' })}.${b64({
    iss: cp.url,
    sub: `system:serviceaccount:${NS}:chatbot`,
    aud: ['breakwater.dev'],
    iat: now - 7200,
    nbf: now - 7200,
    exp: now - 3600,
    'kubernetes.io': { namespace: NS, serviceaccount: { name: 'chatbot', uid: 'x' }, pod: { name: podName, uid: podUid } },
  })}`;
  const signature = createSign('RSA-SHA256').update(body).sign(readFileSync(join(cp.dir, 'sa.key')), 'base64url');
  return `${body}.${signature}`;
}

describe('controller end to end on a real API server', () => {
  let cp: ControlPlane;
  let mock: MockUpstream;
  let work: string;
  let tls: { cert: string; key: string };

  before(async () => {
    cp = await startControlPlane();
    mock = await MockUpstream.start();
    work = mkdtempSync(join(tmpdir(), 'breakwater-e2e-'));
    tls = issueServingCertificate(cp.dir, 'controller');
    await cp.installCrd();
    for (const args of [['create', 'namespace', NS], ['-n', NS, 'create', 'serviceaccount', 'chatbot'], ['create', 'namespace', 'breakwater-system']]) {
      const r = await cp.kubectl(args);
      assert.equal(r.code, 0, r.stderr);
    }
  });
  after(async () => {
    await mock?.close();
    await cp?.stop();
  });

  const startController = (t: TestContext, identity = 'replica'): Promise<CliProcess> =>
    startCliProcess(
      t,
      ['controller', '--kubeconfig', cp.kubeconfig, '--tls-cert', tls.cert, '--tls-key', tls.key, '--config-listen', '127.0.0.1:0', '--health-listen', '127.0.0.1:0', '--resync', '1s', '--lease-duration', '3s', '--identity', identity],
      'controller started',
    );

  async function runningPod(name: string): Promise<void> {
    assert.equal((await cp.kubectl(['apply', '-f', '-'], stringify(pod(name)))).code, 0);
    const patched = await cp.kubectl(['-n', NS, 'patch', 'pod', name, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { phase: 'Running', podIP: '127.0.0.10' } })]);
    assert.equal(patched.code, 0, patched.stderr);
  }

  async function tokenFor(podName: string, audience = 'breakwater.dev'): Promise<string> {
    const r = await cp.kubectl(['-n', NS, 'create', 'token', 'chatbot', `--audience=${audience}`, '--bound-object-kind=Pod', `--bound-object-name=${podName}`, '--duration=10m']);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.trim();
  }

  const sidecarFor = async (t: TestContext, controllerUrl: string, podName: string): Promise<SidecarProcess> => {
    // controllerUrl may list several replicas, tried in turn (as a Service would spread them).
    const tokenFile = join(work, `${podName}.token`);
    writeFileSync(tokenFile, await tokenFor(podName));
    return startSidecarProcess(t, ['--controller', controllerUrl, '--pod-name', podName, '--token-file', tokenFile, '--ca-file', join(cp.dir, 'ca.crt'), '--config-cache', join(work, `${podName}.config.json`)]);
  };

  const row = async () => (await cp.kubectl(['-n', NS, 'get', 'rp', 'chat'])).stdout.split('\n')[1] ?? '';
  const status = async () => JSON.parse((await cp.kubectl(['-n', NS, 'get', 'rp', 'chat', '-o', 'json'])).stdout).status ?? {};
  const ready = (s: SidecarProcess) => fetch(`${s.adminUrl}/readyz`).then((r) => r.status === 200, () => false);
  const attemptsVia = async (s: SidecarProcess) => (await post(`${s.dataUrl}/primary/v1/chat/completions`, chat())).headers.get('x-breakwater-attempts');

  it('pushes the policy to each pod\'s sidecar, reports the truth in status, and survives the controller going away', async (t) => {
    await runningPod('chatbot-a');
    await runningPod('chatbot-b');
    assert.equal((await cp.kubectl(['apply', '-f', '-'], stringify(policy(mock.url, 2)))).code, 0);
    let controller = await startController(t);
    const configUrl = controller.entry.configUrl as string;
    const a = await sidecarFor(t, configUrl, 'chatbot-a');
    const b = await sidecarFor(t, configUrl, 'chatbot-b');
    await until('both sidecars to be ready with the policy', async () => (await ready(a)) && (await ready(b)));

    // The policy reached the sidecars: traffic to a failing upstream is retried as it says.
    mock.defaultBehavior = { kind: 'status', status: 502 };
    assert.equal(await attemptsVia(a), '2');
    mock.defaultBehavior = { kind: 'ok' };
    await until('TARGETED 2 SYNCED 2 READY True', async () => /^chat\s+2\s+2\s+0\s+True\s/.test(await row()));
    const first = await status();
    assert.equal(first.observedGeneration, 1);
    assert.deepEqual(first.conditions.map((c: { type: string; status: string }) => `${c.type}=${c.status}`), ['Accepted=True', 'Ready=True', 'Degraded=False']);

    // A change of the policy reaches every sidecar, and SYNCED catches up with the new generation.
    assert.equal((await cp.kubectl(['apply', '-f', '-'], stringify(policy(mock.url, 3)))).code, 0);
    await until('generation 2 synced on both pods', async () => {
      const s = await status();
      return s.observedGeneration === 2 && s.pods?.synced === 2;
    });
    mock.defaultBehavior = { kind: 'status', status: 502 };
    assert.equal(await attemptsVia(b), '3');

    // Driving the upstream into failure opens a breaker: OPEN, Degraded, and an Event.
    assert.equal(await attemptsVia(a), '3'); // three failures in a row: the breaker opens
    const refused = await post(`${a.dataUrl}/primary/v1/chat/completions`, chat());
    assert.equal(refused.json().error.code, 'circuit_open');
    await until('OPEN to count the pod', async () => /^chat\s+2\s+2\s+2\s+True\s/.test(await row()));
    const degraded = await status();
    assert.equal(degraded.conditions.find((c: { type: string }) => c.type === 'Degraded').status, 'True');
    const { concurrency, ...breakers } = degraded.upstreams[0];
    assert.deepEqual([breakers], [{ name: 'primary', breakers: { closed: 0, halfOpen: 0, open: 2 }, lastTransitionTime: degraded.upstreams[0].lastTransitionTime }]);
    assert.deepEqual(concurrency, { mode: 'adaptive', min: 4, max: 1024, limits: { lowest: 32, median: 32, highest: 32 }, pods: 2 }, 'each pod\'s adaptive limit, as the pods report it');
    const described = await until('the event in kubectl describe', async () => {
      const out = (await cp.kubectl(['-n', NS, 'describe', 'rp', 'chat'])).stdout;
      return /BreakerOpened.*circuit breaker for upstream primary opened/.test(out) && out;
    });
    assert.match(described, /Warning\s+BreakerOpened/);

    // Without the controller, sidecars keep enforcing, also across a sidecar restart (from the copy on disk).
    controller.child.kill('SIGKILL');
    await controller.exited;
    assert.equal((await post(`${a.dataUrl}/primary/v1/chat/completions`, chat())).json().error.code, 'circuit_open');
    b.child.kill('SIGTERM');
    await b.exited;
    const b2 = await sidecarFor(t, configUrl, 'chatbot-b');
    await until('the restarted sidecar to be ready from its last good config', () => ready(b2));
    mock.defaultBehavior = { kind: 'status', status: 502 };
    assert.equal(await attemptsVia(b2), '3', 'generation 2 still enforced');

    // A restarted controller resumes status: breakers reset on both pods show up as healthy.
    mock.defaultBehavior = { kind: 'ok' };
    controller = await startController(t);
    const fresh = controller.entry.configUrl as string;
    const a2 = await sidecarFor(t, fresh, 'chatbot-a');
    const b3 = await sidecarFor(t, fresh, 'chatbot-b');
    a.child.kill('SIGTERM');
    b2.child.kill('SIGTERM');
    await until('the new sidecars ready', async () => (await ready(a2)) && (await ready(b3)));
    await until('status to resume: synced, no open breaker', async () => /^chat\s+2\s+2\s+0\s+True\s/.test(await row()));
    assert.equal((await status()).conditions.find((c: { type: string }) => c.type === 'Degraded').status, 'False');
  });

  it('writes the policy\'s SLOs into status, so kubectl describe rp says whether they are met', async (t) => {
    const sloPolicy = {
      apiVersion: 'breakwater.dev/v1alpha1',
      kind: 'ResiliencePolicy',
      metadata: { name: 'slo', namespace: NS },
      spec: {
        podSelector: { matchLabels: { app: 'sloapp' } },
        upstreams: [{ name: 'primary', url: mock.url, retry: { attempts: 1 }, circuitBreaker: { consecutiveFailures: 1000 } }],
        slo: { window: '1h', availability: { objective: '99' }, timeToFirstToken: { threshold: '2s', objective: '90' } },
      },
    };
    const sloPod = { ...pod('sloapp-a'), metadata: { ...pod('sloapp-a').metadata, labels: { app: 'sloapp', 'breakwater.dev/injected': 'true' } } };
    assert.equal((await cp.kubectl(['apply', '-f', '-'], stringify(sloPod))).code, 0);
    assert.equal((await cp.kubectl(['-n', NS, 'patch', 'pod', 'sloapp-a', '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { phase: 'Running', podIP: '127.0.0.10' } })])).code, 0);
    assert.equal((await cp.kubectl(['apply', '-f', '-'], stringify(sloPolicy))).code, 0);
    const controller = await startController(t);
    const sidecar = await sidecarFor(t, controller.entry.configUrl as string, 'sloapp-a');
    await until('the sidecar ready', () => ready(sidecar));
    const describe = async () => (await cp.kubectl(['-n', NS, 'describe', 'rp', 'slo'])).stdout;
    const sloMet = async () => (JSON.parse((await cp.kubectl(['-n', NS, 'get', 'rp', 'slo', '-o', 'json'])).stdout).status?.conditions ?? []).find((c: { type: string }) => c.type === 'SLOMet');
    const unknown = await until('SLOMet=Unknown before any traffic', async () => (await sloMet())?.status === 'Unknown' && sloMet());
    assert.equal(unknown.reason, 'NoTraffic');

    mock.defaultBehavior = { kind: 'ok' };
    const url = `${sidecar.dataUrl}/primary/v1/chat/completions`;
    for (let i = 0; i < 20; i++) assert.equal((await post(url, chat())).status, 200);
    for (let i = 0; i < 5; i++) assert.equal((await post(url, chat({ stream: true }))).status, 200);
    const met = await until('SLOMet=True', async () => (await sloMet())?.status === 'True' && describe());
    assert.match(met, /Reason:\s+WithinObjectives\s+Status:\s+True\s+Type:\s+SLOMet/);
    assert.match(met, /availability 100\.000% \(25 of 25\) against 99%; time to first token 100\.000% \(5 of 5\) against 90%/);

    // Failures: the first already takes availability below 99%, and the sidecar reports that change at once
    // (later counts ride on later reports), so status shows 25 good of 26 to 30.
    mock.defaultBehavior = { kind: 'status', status: 502 };
    for (let i = 0; i < 5; i++) assert.equal((await post(url, chat())).status, 502);
    const missed = await until('SLOMet=False', async () => (await sloMet())?.status === 'False' && describe());
    assert.match(missed, /Reason:\s+BelowObjective\s+Status:\s+False\s+Type:\s+SLOMet/);
    const total = Number(/Over the last 1h: availability \d+\.\d{3}% \(25 of (\d+)\) against 99%\./.exec(missed)?.[1]);
    assert.ok(total >= 26 && total <= 30, `25 good of ${total}`);
    const status = JSON.parse((await cp.kubectl(['-n', NS, 'get', 'rp', 'slo', '-o', 'json'])).stdout).status;
    assert.deepEqual(status.slo.slis, [
      { name: 'availability', objective: '99', actual: (Math.floor((25 / total) * 100_000) / 1000).toFixed(3), good: 25, total },
      { name: 'timeToFirstToken', objective: '90', actual: '100.000', good: 5, total: 5 },
    ]);
    const metrics = await (await fetch(`${sidecar.adminUrl}/metrics`)).text();
    assert.match(metrics, /breakwater_sli_events_total\{policy="shop\/slo",sli="availability",result="bad"\} 5/);
    assert.match(metrics, /breakwater_slo_objective\{policy="shop\/slo",sli="availability"\} 0\.99/);
    // 5 bad in 30 over 5 minutes: (5/30) / (1 - 0.99) = 16.67.
    assert.match(metrics, /breakwater_slo_burn_rate\{policy="shop\/slo",sli="availability",window="5m"\} 16\.66/);
    mock.defaultBehavior = { kind: 'ok' };
  });

  it('says Accepted=False with a reason while a Secret the policy names is missing or not labelled for Breakwater, and True once it is both', async (t) => {
    const keyed = {
      apiVersion: 'breakwater.dev/v1alpha1',
      kind: 'ResiliencePolicy',
      metadata: { name: 'keyed', namespace: NS },
      spec: { upstreams: [{ name: 'openai', url: 'https://api.openai.com', auth: { secretRef: { name: 'openai-key', key: 'apiKey' } } }] },
    };
    assert.equal((await cp.kubectl(['apply', '-f', '-'], stringify(keyed))).code, 0);
    await startController(t);
    const accepted = async () =>
      (JSON.parse((await cp.kubectl(['-n', NS, 'get', 'rp', 'keyed', '-o', 'json'])).stdout).status?.conditions ?? []).find((c: { type: string }) => c.type === 'Accepted');
    const missing = await until('Accepted=False', async () => (await accepted())?.status === 'False' && accepted());
    assert.equal(missing.reason, 'SecretNotFound');
    // kubectl get rp: READY is never True for a policy that is not accepted, and ACCEPTED says so (issue 26).
    const columns = (await cp.kubectl(['-n', NS, 'get', 'rp', 'keyed'])).stdout.split('\n');
    assert.match(columns[0]!, /^NAME\s+TARGETED\s+SYNCED\s+OPEN\s+READY\s+ACCEPTED\s+SPEND\s+OBSERVED\s+AGE/);
    assert.match(columns[1]!, /^keyed\s+0\s+0\s+0\s+False\s+False\s+\d+s/);
    assert.equal(missing.message, 'upstream openai: Secret openai-key, key apiKey does not exist');
    // Created, but without its owner's consent (red team 26, F7): still not accepted, with a reason of its own.
    assert.equal((await cp.kubectl(['-n', NS, 'create', 'secret', 'generic', 'openai-key', '--from-literal=apiKey=sk-test'])).code, 0);
    const refused = await until('Accepted=False SecretNotAllowed', async () => (await accepted())?.reason === 'SecretNotAllowed' && accepted());
    assert.equal(refused.status, 'False');
    assert.match(refused.message, /^upstream openai: Secret openai-key, key apiKey is not usable: Secret openai-key is not labelled breakwater\.dev\/credential=true/);
    assert.equal((await cp.kubectl(['-n', NS, 'label', 'secret', 'openai-key', 'breakwater.dev/credential=true'])).code, 0);
    const found = await until('Accepted=True', async () => (await accepted())?.status === 'True' && accepted());
    assert.equal(found.reason, 'Valid');
    const status = JSON.stringify(JSON.parse((await cp.kubectl(['-n', NS, 'get', 'rp', 'keyed', '-o', 'json'])).stdout).status);
    assert.ok(!status.includes('sk-test'), 'no secret in status');
  });

  it('check-policy with a kubeconfig reads the Secrets a policy names as the controller would, and never prints a value (issue 26)', async () => {
    const secret = (name: string, labelled: boolean) =>
      stringify({ apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace: NS, labels: labelled ? { 'breakwater.dev/credential': 'true' } : {} }, stringData: { apiKey: 'sk-check-value' } });
    assert.equal((await cp.kubectl(['apply', '-f', '-'], secret('check-good', true))).code, 0);
    assert.equal((await cp.kubectl(['apply', '-f', '-'], secret('check-unlabelled', false))).code, 0);
    const policyFile = (refs: [string, string][]) => {
      const file = join(work, `check-${refs.length}.yaml`);
      writeFileSync(file, stringify({ upstreams: refs.map(([name, key], i) => ({ name: `u${i}`, url: 'https://api.openai.com', auth: { secretRef: { name, key } } })) }));
      return file;
    };
    const bad = await cliResult(['check-policy', policyFile([['check-good', 'apiKey'], ['check-unlabelled', 'apiKey'], ['check-missing', 'apiKey'], ['check-good', 'other']]), '--kubeconfig', cp.kubeconfig, '--namespace', NS]);
    assert.equal(bad.code, 1, bad.stderr);
    assert.match(bad.stdout, /u0: Secret check-good, key apiKey holds a usable credential, in namespace shop/);
    assert.match(bad.stdout, /u1: Secret check-unlabelled, key apiKey is not usable: Secret check-unlabelled is not labelled breakwater\.dev\/credential=true.*\(SecretNotAllowed\)/);
    assert.match(bad.stdout, /u2: Secret check-missing, key apiKey does not exist \(SecretNotFound\)/);
    assert.match(bad.stdout, /u3: Secret check-good, key other does not exist \(SecretNotFound\)/);
    assert.match(bad.stderr, /3 Secret keys in namespace shop would give no credential: the policy would not be Accepted/);
    const good = await cliResult(['check-policy', policyFile([['check-good', 'apiKey']]), '--kubeconfig', cp.kubeconfig, '-n', NS]);
    assert.equal(good.code, 0, good.stderr);
    assert.doesNotMatch(good.stdout + good.stderr + bad.stdout + bad.stderr, /sk-check-value/, 'no value printed');
  });

  it('hands a pod its Secret\'s key through the config stream: a Secret made after the pod, a secretRef added live, and a rotation reach the sidecar in seconds, with no restart and no failed call (issue 26)', async (t) => {
    const app = { app: 'keyed' };
    const keyedPod = { ...pod('keyed-a'), metadata: { name: 'keyed-a', namespace: NS, labels: { ...app, 'breakwater.dev/injected': 'true' } } };
    assert.equal((await cp.kubectl(['apply', '-f', '-'], stringify(keyedPod))).code, 0);
    assert.equal((await cp.kubectl(['-n', NS, 'patch', 'pod', 'keyed-a', '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { phase: 'Running', podIP: '127.0.0.11' } })])).code, 0);
    const upstream = await MockUpstream.start();
    t.after(() => upstream.close());
    const keyedPolicy = (auth?: object) => ({
      apiVersion: 'breakwater.dev/v1alpha1',
      kind: 'ResiliencePolicy',
      metadata: { name: 'keyed-live', namespace: NS },
      spec: { podSelector: { matchLabels: app }, upstreams: [{ name: 'openai', url: upstream.url, retry: { attempts: 1 }, ...(auth && { auth }) }] },
    });
    assert.equal((await cp.kubectl(['apply', '-f', '-'], stringify(keyedPolicy()))).code, 0);
    const controller = await startCliProcess(
      t,
      ['controller', '--kubeconfig', cp.kubeconfig, '--tls-cert', tls.cert, '--tls-key', tls.key, '--config-listen', '127.0.0.1:0', '--health-listen', '127.0.0.1:0', '--resync', '1s', '--secret-poll', '500ms', '--lease-duration', '3s', '--identity', 'secrets'],
      'controller started',
    );
    const sidecar = await sidecarFor(t, controller.entry.configUrl as string, 'keyed-a');
    await until('the sidecar ready', () => ready(sidecar));
    const call = async () => (await post(`${sidecar.dataUrl}/openai/v1/chat/completions`, chat(), { authorization: 'Bearer sk-app' })).status;
    const lastKey = () => upstream.requests.at(-1)?.headers.authorization;
    assert.equal(await call(), 200);
    assert.equal(lastKey(), 'Bearer sk-app', 'no auth yet: the app\'s own key goes to the upstream it addressed');

    // A secretRef added to the live policy, naming a Secret that does not exist yet: the new generation is taken, that upstream waits.
    assert.equal((await cp.kubectl(['apply', '-f', '-'], stringify(keyedPolicy({ secretRef: { name: 'rotating-key', key: 'apiKey' } })))).code, 0);
    const waiting = await until('the new generation in force, waiting for its Secret', async () => {
      const r = await post(`${sidecar.dataUrl}/openai/v1/chat/completions`, chat(), { authorization: 'Bearer sk-app' });
      return r.status === 503 && r;
    });
    assert.match(waiting.json().error.message, /no credential yet: Secret rotating-key, key apiKey does not exist/);
    const status = (await (await fetch(`${sidecar.adminUrl}/status`)).json()) as { upstreams: { credentialMissing?: string }[] };
    assert.equal(status.upstreams[0]!.credentialMissing, 'Secret rotating-key, key apiKey');
    // Calls made before the new generation arrived went out with the app's key, as that generation has no auth; from now on none leaves.
    const inForce = upstream.requests.length;

    // The Secret appears, not labelled for Breakwater (red team 26, F7): its value never leaves; that upstream still waits, and says why.
    assert.equal((await cp.kubectl(['-n', NS, 'create', 'secret', 'generic', 'rotating-key', '--from-literal=apiKey=sk-one'])).code, 0);
    const unlabelled = await until('the upstream refused for want of the label', async () => {
      const r = await post(`${sidecar.dataUrl}/openai/v1/chat/completions`, chat(), { authorization: 'Bearer sk-app' });
      return r.status === 503 && /is not labelled breakwater\.dev\/credential=true/.test(r.text) && r;
    });
    assert.match(unlabelled.json().error.message, /no credential yet: Secret rotating-key, key apiKey is not usable: Secret rotating-key is not labelled breakwater\.dev\/credential=true/);
    assert.ok(!unlabelled.text.includes('sk-one'));
    assert.ok(!upstream.requests.some((r) => r.headers.authorization === 'Bearer sk-one'), 'no value of an unlabelled Secret is sent');
    assert.equal(upstream.requests.length, inForce, 'and nothing else: the app\'s key is never sent in place of the missing one');

    // Labelled: served with it, within seconds.
    let made = Date.now();
    assert.equal((await cp.kubectl(['-n', NS, 'label', 'secret', 'rotating-key', 'breakwater.dev/credential=true'])).code, 0);
    await until('the first key in use', async () => (await call()) === 200 && lastKey() === 'Bearer sk-one');
    const appeared = Date.now() - made;

    // Rotation under traffic: every call succeeds, the new key is in use within seconds, the sidecar is the same process.
    const statuses: number[] = [];
    let calling = true;
    const traffic = (async () => {
      while (calling) statuses.push(await call());
    })();
    made = Date.now();
    const rotated = stringify({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'rotating-key', namespace: NS, labels: { 'breakwater.dev/credential': 'true' } }, stringData: { apiKey: 'sk-two' } });
    assert.equal((await cp.kubectl(['apply', '-f', '-'], rotated)).code, 0);
    await until('the rotated key in use', async () => lastKey() === 'Bearer sk-two' && true);
    const rotation = Date.now() - made;
    calling = false;
    await traffic;
    assert.ok(statuses.length > 0 && statuses.every((s) => s === 200), `every call during the rotation succeeded: ${JSON.stringify(statuses.filter((s) => s !== 200))}`);
    assert.equal(sidecar.child.exitCode, null, 'no restart');
    t.diagnostic(`Secret labelled after its pod started: in use after ${appeared} ms; rotated: in use after ${rotation} ms (secret poll 500 ms), ${statuses.length} calls, none failed`);
    const logs = JSON.stringify(sidecar.logs) + sidecar.stderr() + JSON.stringify(controller.logs) + controller.stderr();
    assert.ok(!/sk-one|sk-two/.test(logs), 'no key in any log');
  });

  it('runs two replicas safely: one leader writes status, and the other takes over when it dies', async (t) => {
    const r1 = await startController(t, 'replica-1');
    const r2 = await startController(t, 'replica-2');
    const holder = async () => (await cp.kubectl(['-n', 'breakwater-system', 'get', 'lease', 'breakwater-controller', '-o', 'jsonpath={.spec.holderIdentity}'])).stdout;
    const leaderName = await until('a leader', async () => ['replica-1', 'replica-2'].includes(await holder()) && holder());
    const [leader, follower] = leaderName === 'replica-1' ? [r1, r2] : [r2, r1];
    const leaderUrl = leader.entry.configUrl as string;
    const followerUrl = follower.entry.configUrl as string;
    // One sidecar on each replica; each can fall back to the other.
    const onLeader = await sidecarFor(t, `${leaderUrl},${followerUrl}`, 'chatbot-a');
    const onFollower = await sidecarFor(t, `${followerUrl},${leaderUrl}`, 'chatbot-b');
    await until('both ready', async () => (await ready(onLeader)) && (await ready(onFollower)));
    /** Applies the policy with `attempts` and waits until both pods run its generation, which it returns. */
    const rollOut = async (attempts: number): Promise<number> => {
      assert.equal((await cp.kubectl(['apply', '-f', '-'], stringify(policy(mock.url, attempts)))).code, 0);
      const g = JSON.parse((await cp.kubectl(['-n', NS, 'get', 'rp', 'chat', '-o', 'json'])).stdout).metadata.generation as number;
      await until(`generation ${g} synced on both pods`, async () => {
        const s = await status();
        return s.observedGeneration === g && s.pods?.synced === 2;
      });
      return g;
    };
    await rollOut(4); // the report from the follower's sidecar reached the leader's status
    // It went through the follower's ConfigMap in the controller's namespace, which pod owners cannot write.
    const recorded = JSON.parse((await cp.kubectl(['-n', 'breakwater-system', 'get', 'configmap', '-l', 'breakwater.dev/reports', '-o', 'json'])).stdout).items as { metadata: { name: string }; data?: Record<string, string> }[];
    assert.deepEqual(
      recorded.filter((cm) => cm.data?.['shop_chatbot-b']).map((cm) => cm.metadata.name),
      [`breakwater-reports-${leaderName === 'replica-1' ? 'replica-2' : 'replica-1'}`],
    );
    // A pod's owner who writes a report on their own pod (the old channel) forges nothing.
    const version = ((await (await fetch(`${onLeader.adminUrl}/status`)).json()) as { config: object }).config;
    await runningPod('chatbot-forger');
    const forged = JSON.stringify({ applied: version, breakers: { primary: { closed: 0, halfOpen: 0, open: 1 } } });
    assert.equal((await cp.kubectl(['-n', NS, 'annotate', 'pod', 'chatbot-forger', `breakwater.dev/sidecar-state=${forged}`])).code, 0);
    await until('the forger to be targeted', async () => (await status()).pods?.targeted === 3);
    await new Promise((r) => setTimeout(r, 2500)); // a few resyncs (1 s)
    assert.deepEqual((await status()).pods, { targeted: 3, synced: 2, withOpenBreaker: 0 });
    assert.equal((await cp.kubectl(['-n', NS, 'delete', 'pod', 'chatbot-forger', '--grace-period=0', '--force'])).code, 0);

    // Found on a real cluster: through a Service, a sidecar's report (its own short request) may reach the replica
    // that does not hold its stream. It counts there too: here, the leader learns of chatbot-b's open breaker.
    const reportTo = async (base: string, podName: string, open: number) => {
      const applied = ((await (await fetch(`${onFollower.adminUrl}/status`)).json()) as { config: object }).config;
      const { request } = await import('node:https');
      return new Promise<number>((resolve, reject) => {
        const req = request(`${base}/v1/report?pod=${podName}`, { method: 'POST', ca: readFileSync(join(cp.dir, 'ca.crt')), headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } }, (res) => {
          res.resume();
          resolve(res.statusCode!);
        });
        req.on('error', reject);
        req.end(JSON.stringify({ applied, breakers: { primary: { closed: 1 - open, halfOpen: 0, open } } }));
      });
    };
    const token = await tokenFor('chatbot-b');
    assert.equal(await reportTo(leaderUrl, 'chatbot-b', 1), 204);
    await until('the report sent to the replica without the stream counted', async () => (await status()).pods?.withOpenBreaker === 1, 5000);
    assert.equal(await reportTo(leaderUrl, 'chatbot-b', 0), 204);
    await until('and the next one too', async () => (await status()).pods?.withOpenBreaker === 0, 5000);
    const metrics = async (c: CliProcess) => (await (await fetch(`${c.entry.healthUrl as string}/metrics`)).text()).match(/^breakwater_controller_leader (\d)/m)?.[1];
    assert.equal(await metrics(leader), '1');
    assert.equal(await metrics(follower), '0');

    leader.child.kill('SIGKILL');
    await leader.exited;
    await until('the follower to take the lease', async () => (await holder()) !== leaderName);
    const latest = await rollOut(5); // written by the new leader, reported by both sidecars (one reconnected)
    const applied = (await (await fetch(`${onLeader.adminUrl}/status`)).json()) as { config: { generation: number } };
    assert.equal(applied.config.generation, latest, 'the sidecar of the dead replica reconnected to the other and runs the latest generation');
  });

  it('gives a config only to the pod the token is bound to', async (t) => {
    const uid = JSON.parse((await cp.kubectl(['-n', NS, 'get', 'pod', 'chatbot-a', '-o', 'json'])).stdout).metadata.uid;
    const controller = await startController(t);
    const url = `${controller.entry.configUrl as string}/v1/config?pod=chatbot-a`;
    const { request } = await import('node:https');
    const ca = readFileSync(join(cp.dir, 'ca.crt'));
    const statusWith = (token?: string) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = request(url, { ca, headers: token ? { authorization: `Bearer ${token}` } : {} }, (res) => {
          let body = '';
          res.on('data', (d) => {
            body += d;
            if (res.statusCode === 200) req.destroy(); // a live stream: its first event is enough
          });
          res.on('end', () => resolve({ status: res.statusCode!, body }));
          res.on('close', () => resolve({ status: res.statusCode!, body }));
        });
        req.on('error', reject);
        req.end();
      });
    assert.equal((await statusWith()).status, 401, 'no token');
    const other = await statusWith(await tokenFor('chatbot-b'));
    assert.equal(other.status, 403, 'a token bound to another pod');
    assert.match(other.body, /bound to pod shop\/chatbot-b/);
    assert.equal((await statusWith(expiredToken(cp, 'chatbot-a', uid))).status, 401, 'an expired token');
    assert.equal((await statusWith(await tokenFor('chatbot-a', 'https://kubernetes.default.svc'))).status, 401, 'a token for another audience');
    const own = await statusWith(await tokenFor('chatbot-a'));
    assert.equal(own.status, 200);
    assert.match(own.body, /^event: snapshot\ndata: \{"version":\{"source":"controller","policy":"shop\/chat"/);
  });
});
