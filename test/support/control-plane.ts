/**
 * A real Kubernetes control plane for tests, started the way controller-runtime's
 * envtest does it: etcd and kube-apiserver as child processes on 127.0.0.1, with
 * their own CA, a serving certificate, an admin client certificate
 * (system:masters), a service-account signing key (so TokenRequest and
 * TokenReview work), RBAC authorization, and an admin kubeconfig.
 *
 * Binaries come from KUBEBUILDER_ASSETS, or TEST_ASSET_KUBE_APISERVER and
 * TEST_ASSET_ETCD, when set; otherwise scripts/build-control-plane.sh builds
 * them once from their Go modules and caches them.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from './ports.js';
import { until } from './until.js';

const BUILD_SCRIPT = fileURLToPath(new URL('../../scripts/build-control-plane.sh', import.meta.url));
const CRD = fileURLToPath(new URL('../../crds/breakwater.dev_resiliencepolicies.yaml', import.meta.url));

export interface ControlPlane {
  /** https://127.0.0.1:<port> */
  url: string;
  /** Admin kubeconfig (system:masters). */
  kubeconfig: string;
  /** Folder with ca.crt, ca.key and friends. */
  dir: string;
  /** Runs the machine's kubectl against this control plane. */
  kubectl(args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }>;
  /** Applies the repository's ResiliencePolicy CRD and returns once the API server serves it. */
  installCrd(): Promise<void>;
  stop(): Promise<void>;
}

function assets(): { apiserver: string; etcd: string } {
  const dir = process.env.KUBEBUILDER_ASSETS;
  const apiserver = process.env.TEST_ASSET_KUBE_APISERVER ?? (dir && join(dir, 'kube-apiserver'));
  const etcd = process.env.TEST_ASSET_ETCD ?? (dir && join(dir, 'etcd'));
  if (apiserver && etcd) return { apiserver, etcd };
  const built = execFileSync('bash', [BUILD_SCRIPT], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim().split('\n').at(-1)!;
  return { apiserver: apiserver ?? join(built, 'kube-apiserver'), etcd: etcd ?? join(built, 'etcd') };
}

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
}

/** A certificate signed by the test CA in `dir`: `<name>.crt` and `<name>.key`. */
export function issueCertificate(dir: string, name: string, subject: string, ext: string): { cert: string; key: string } {
  writeFileSync(join(dir, `${name}.ext`), ext);
  openssl(dir, ['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject]);
  openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`]);
  return { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
}

/** A serving certificate for 127.0.0.1 signed by the test CA. */
export const issueServingCertificate = (dir: string, name: string) => issueCertificate(dir, name, `/CN=${name}`, 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');

/** CA, apiserver serving cert, admin client cert, the API server's client cert for webhooks, service-account key pair. */
export function makeCertificates(dir: string): void {
  openssl(dir, ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=breakwater-test-ca']);
  const leaf = (name: string, subject: string, ext: string) => issueCertificate(dir, name, subject, ext);
  leaf('apiserver', '/CN=kube-apiserver', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  leaf('admin', '/O=system:masters/CN=breakwater-test-admin', 'extendedKeyUsage=clientAuth\n');
  leaf('webhook-client', '/CN=kube-apiserver-webhook-client', 'extendedKeyUsage=clientAuth\n');
  openssl(dir, ['genrsa', '-out', 'sa.key', '2048']);
  openssl(dir, ['rsa', '-in', 'sa.key', '-pubout', '-out', 'sa.pub']);
}

/** The API server presents webhook-client.crt to every webhook, as a cluster configured for webhook client authentication does. */
function writeAdmissionConfig(dir: string): string {
  writeFileSync(
    join(dir, 'webhook-client.kubeconfig'),
    `apiVersion: v1
kind: Config
users: [{name: "*", user: {client-certificate: ${join(dir, 'webhook-client.crt')}, client-key: ${join(dir, 'webhook-client.key')}}}]
`,
  );
  const file = join(dir, 'admission.yaml');
  writeFileSync(
    file,
    `apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
  - name: MutatingAdmissionWebhook
    configuration: {apiVersion: apiserver.config.k8s.io/v1, kind: WebhookAdmissionConfiguration, kubeConfigFile: ${join(dir, 'webhook-client.kubeconfig')}}
`,
  );
  return file;
}

function kubeconfigFor(dir: string, url: string): string {
  const b64 = (f: string) => readFileSync(join(dir, f)).toString('base64');
  return `apiVersion: v1
kind: Config
clusters: [{name: test, cluster: {server: "${url}", certificate-authority-data: ${b64('ca.crt')}}}]
users: [{name: admin, user: {client-certificate-data: ${b64('admin.crt')}, client-key-data: ${b64('admin.key')}}}]
contexts: [{name: test, context: {cluster: test, user: admin, namespace: default}}]
current-context: test
`;
}

function probe(url: string, dir: string): Promise<number> {
  return new Promise((resolve) => {
    const req = request(url, { ca: readFileSync(join(dir, 'ca.crt')), cert: readFileSync(join(dir, 'admin.crt')), key: readFileSync(join(dir, 'admin.key')), timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', () => resolve(0));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

async function waitUntil(check: () => Promise<boolean>, what: string, ms: number, exited: () => string | undefined): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    const died = exited();
    if (died) throw new Error(`${what}: process exited: ${died}`);
    if (Date.now() > end) throw new Error(`${what} not ready after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function run(binary: string, args: string[], log: string): { child: ChildProcess; exited: () => string | undefined } {
  const child = spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => {
    stderr = (stderr + d).slice(-8000);
  });
  child.on('exit', () => writeFileSync(log, stderr));
  return { child, exited: () => (child.exitCode !== null || child.signalCode !== null ? stderr.slice(-2000) : undefined) };
}

/** Starts a control plane, trying again with fresh ports if one was taken between choosing and binding it. */
export async function startControlPlane(): Promise<ControlPlane> {
  const binaries = assets();
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(binaries);
    } catch (err) {
      if (attempt >= 3) throw err;
    }
  }
}

async function startOnce({ apiserver, etcd }: { apiserver: string; etcd: string }): Promise<ControlPlane> {
  const dir = mkdtempSync(join(tmpdir(), 'breakwater-cp-'));
  makeCertificates(dir);
  const [etcdPort, peerPort, apiPort] = [await freePort(), await freePort(), await freePort()];
  const etcdUrl = `http://127.0.0.1:${etcdPort}`;
  const etcdProc = run(
    etcd,
    [
      `--data-dir=${join(dir, 'etcd')}`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-cluster=default=http://127.0.0.1:${peerPort}`,
      '--unsafe-no-fsync=true',
      '--log-level=error',
    ],
    join(dir, 'etcd.log'),
  );
  try {
    await waitUntil(async () => (await fetch(`${etcdUrl}/health`).then((r) => r.ok, () => false)), 'etcd', 30_000, etcdProc.exited);
  } catch (err) {
    etcdProc.child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const url = `https://127.0.0.1:${apiPort}`;
  const apiProc = run(
    apiserver,
    [
      `--etcd-servers=${etcdUrl}`,
      `--bind-address=127.0.0.1`,
      `--advertise-address=127.0.0.1`,
      `--secure-port=${apiPort}`,
      `--cert-dir=${dir}`,
      `--tls-cert-file=${join(dir, 'apiserver.crt')}`,
      `--tls-private-key-file=${join(dir, 'apiserver.key')}`,
      `--client-ca-file=${join(dir, 'ca.crt')}`,
      '--authorization-mode=RBAC',
      `--service-account-issuer=${url}`,
      `--service-account-key-file=${join(dir, 'sa.pub')}`,
      `--service-account-signing-key-file=${join(dir, 'sa.key')}`,
      '--service-cluster-ip-range=10.0.0.0/24',
      '--allow-privileged=true',
      // No controller-manager runs: nothing would create the default service accounts this plugin waits for.
      '--disable-admission-plugins=ServiceAccount',
      `--admission-control-config-file=${writeAdmissionConfig(dir)}`,
      '--enable-priority-and-fairness=false',
      // The kubernetes Service would point at 127.0.0.1, which the endpoint reconciler refuses.
      '--endpoint-reconciler-type=none',
      '--v=0',
    ],
    join(dir, 'apiserver.log'),
  );
  const stopAll = async () => {
    for (const p of [apiProc.child, etcdProc.child]) {
      if (p.exitCode !== null || p.signalCode !== null) continue;
      p.kill('SIGTERM');
      await new Promise((r) => {
        const force = setTimeout(() => p.kill('SIGKILL'), 5000);
        p.once('exit', () => r(clearTimeout(force)));
      });
    }
  };
  try {
    await waitUntil(async () => (await probe(`${url}/readyz`, dir)) === 200, 'kube-apiserver', 90_000, apiProc.exited);
  } catch (err) {
    await stopAll();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const kubeconfig = join(dir, 'kubeconfig');
  writeFileSync(kubeconfig, kubeconfigFor(dir, url));
  const kubectl: ControlPlane['kubectl'] = (args, input) =>
    new Promise((resolve) => {
      const child = execFile('kubectl', ['--kubeconfig', kubeconfig, ...args], { encoding: 'utf8' }, (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
      );
      if (input !== undefined) child.stdin!.end(input);
    });
  return {
    url,
    kubeconfig,
    dir,
    kubectl,
    async installCrd() {
      const applied = await kubectl(['apply', '-f', CRD]);
      if (applied.code !== 0) throw new Error(`kubectl apply ${CRD}: ${applied.stderr}`);
      // Not `kubectl wait --for=condition=Established`: it fails outright when it
      // reads the CRD before the API server has written any condition.
      await until('the CRD to be established', async () =>
        (await kubectl(['get', 'crd', 'resiliencepolicies.breakwater.dev', '-o', 'jsonpath={.status.conditions[?(@.type=="Established")].status}'])).stdout,
        (status) => status === 'True', 30_000);
    },
    async stop() {
      await stopAll();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
