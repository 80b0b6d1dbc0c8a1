/**
 * A real single-node Kubernetes cluster for the e2e tests (needs root): etcd,
 * kube-apiserver, kube-controller-manager, kube-scheduler, containerd + runc,
 * the CNI bridge, kubelet, kube-proxy and CoreDNS, as child processes of the
 * test. Binaries come from BREAKWATER_NODE_ASSETS and KUBEBUILDER_ASSETS when
 * set, else scripts/build-node.sh and scripts/build-control-plane.sh build
 * them once; Debian's runc, CNI plugins and iptables come from
 * scripts/install-node-packages.sh.
 *
 * It changes the machine, and `stop()` undoes it: the processes it started
 * (by PID), the pods' containers, mounts under its folder and /run/netns,
 * the iptables chains (KUBE-*, CNI-*), the bridge, the kubepods cgroups, the
 * sysctls it set, and /var/lib/kubelet/device-plugins (the kubelet writes its
 * socket there whatever its root dir). `stop()` then looks for anything left
 * and returns it, so a test can insist on a clean machine. One cluster per machine: a second start is refused
 * while the first runs (ports 6443 and 10250 and the chains are machine-wide).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { hostname, networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { containerdConfig, containerdSocket, cniConfig, corefile, kubeletConfig, kubeProxyConfig, type NodeLayout } from './cluster-files.js';
import { issueCertificate } from './control-plane.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const DIR = '/var/lib/breakwater-e2e';
const LOCK = '/run/breakwater-e2e.pid';
const API_PORT = 6443;
const SYSCTLS = ['net/ipv4/ip_forward', 'net/ipv4/conf/all/route_localnet', 'net/bridge/bridge-nf-call-iptables'];

export interface Cluster {
  kubeconfig: string;
  nodeName: string;
  kubectl(args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }>;
  /** Imports a docker-archive into the node's containerd (for the kubelet). */
  importImage(archive: string): void;
  /** Stops the cluster and undoes its changes; returns what is still left (nothing, when all went well). */
  stop(): Promise<string[]>;
}

/** The kubelet's device-plugin folder, outside its root dir, and whether each level was there before. */
const DEVICE_PLUGINS = '/var/lib/kubelet/device-plugins';

const sh = (cmd: string, args: string[], input?: string) => execFileSync(cmd, args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'] });
const quiet = (cmd: string, args: string[]) => {
  try {
    return sh(cmd, args);
  } catch {
    return '';
  }
};
const script = (name: string) => sh('bash', [join(ROOT, 'scripts', name)]).trim().split('\n').at(-1)!;

function assets(): { node: string; controlPlane: string } {
  sh('bash', [join(ROOT, 'scripts/install-node-packages.sh')]);
  return { node: process.env.BREAKWATER_NODE_ASSETS ?? script('build-node.sh'), controlPlane: process.env.KUBEBUILDER_ASSETS ?? script('build-control-plane.sh') };
}

function nodeIp(): string {
  const address = Object.values(networkInterfaces())
    .flat()
    .find((a) => a && a.family === 'IPv4' && !a.internal);
  if (!address) throw new Error('the cluster needs a non-loopback IPv4 address');
  return address.address;
}

/**
 * Refuses a second cluster; takes over from one whose process is gone
 * (cleaning what it left). The lock file holds the PID and the folders this
 * cluster creates outside its own, so a later run can remove them too.
 */
function takeMachine(): string[] {
  if (existsSync(LOCK)) {
    const [pid, ...created] = readFileSync(LOCK, 'utf8').split('\n').filter(Boolean);
    if (Number(pid) && existsSync(`/proc/${pid}`)) throw new Error(`a Breakwater e2e cluster already runs on this machine (pid ${pid})`);
    undoMachineChanges({}, created);
  }
  const createdDirs = ['/var/lib/kubelet', DEVICE_PLUGINS].filter((d) => !existsSync(d)).reverse();
  writeFileSync(LOCK, [process.pid, ...createdDirs].join('\n'));
  return createdDirs;
}

function certificates(pki: string, l: NodeLayout): void {
  mkdirSync(pki, { recursive: true });
  const openssl = (args: string[]) => execFileSync('openssl', args, { cwd: pki, stdio: 'ignore' });
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=breakwater-e2e-ca']);
  const client = 'extendedKeyUsage=clientAuth\n';
  const sans = ['IP:127.0.0.1', `IP:${l.nodeIp}`, 'IP:10.96.0.1', 'DNS:localhost', 'DNS:kubernetes', 'DNS:kubernetes.default', 'DNS:kubernetes.default.svc', 'DNS:kubernetes.default.svc.cluster.local'];
  issueCertificate(pki, 'apiserver', '/CN=kube-apiserver', `subjectAltName=${sans.join(',')}\nextendedKeyUsage=serverAuth\n`);
  issueCertificate(pki, 'admin', '/O=system:masters/CN=breakwater-e2e-admin', client);
  issueCertificate(pki, 'apiserver-kubelet-client', '/O=system:masters/CN=kube-apiserver-kubelet-client', client);
  issueCertificate(pki, 'webhook-client', '/CN=kube-apiserver-webhook-client', client);
  issueCertificate(pki, 'kubelet', `/O=system:nodes/CN=system:node:${l.nodeName}`, client);
  issueCertificate(pki, 'kubelet-serving', `/CN=${l.nodeName}`, `subjectAltName=IP:${l.nodeIp},DNS:${l.nodeName}\nextendedKeyUsage=serverAuth\n`);
  issueCertificate(pki, 'controller-manager', '/CN=system:kube-controller-manager', client);
  issueCertificate(pki, 'scheduler', '/CN=system:kube-scheduler', client);
  issueCertificate(pki, 'kube-proxy', '/CN=system:kube-proxy', client);
  openssl(['genrsa', '-out', 'sa.key', '2048']);
  openssl(['rsa', '-in', 'sa.key', '-pubout', '-out', 'sa.pub']);
}

function kubeconfig(dir: string, name: string, server: string): string {
  const pki = join(dir, 'pki');
  const file = join(dir, `${name}.kubeconfig`);
  writeFileSync(
    file,
    `apiVersion: v1
kind: Config
clusters: [{name: e2e, cluster: {server: "${server}", certificate-authority: ${pki}/ca.crt}}]
users: [{name: ${name}, user: {client-certificate: ${pki}/${name}.crt, client-key: ${pki}/${name}.key}}]
contexts: [{name: e2e, context: {cluster: e2e, user: ${name}}}]
current-context: e2e
`,
  );
  return file;
}

interface Started {
  name: string;
  child: ChildProcess;
}

function start(started: Started[], dir: string, name: string, binary: string, args: string[]): Started {
  const child = spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin` } });
  const log = join(dir, 'logs', `${name}.log`);
  child.stderr!.on('data', (d: Buffer) => writeFileSync(log, d, { flag: 'a' }));
  const entry = { name, child };
  started.push(entry);
  return entry;
}

async function waitFor(what: string, ms: number, check: () => boolean | Promise<boolean>, started: Started[]): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    const died = started.find((s) => s.child.exitCode !== null || s.child.signalCode !== null);
    if (died) throw new Error(`${what}: ${died.name} exited (see ${DIR}/logs/${died.name}.log)`);
    if (Date.now() > end) throw new Error(`${what}: not after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Undoes what a cluster changed on the machine: the caller has stopped its processes. */
function undoMachineChanges(sysctls: Record<string, string>, createdDirs: string[]): void {
  // The pods' processes first (they outlive their shims and containerd: every process in a kubepods
  // cgroup is one the cluster started), then the shims, mounts, namespaces, network, cgroups.
  for (const pid of kubepodsProcesses()) quiet('kill', ['-9', pid]);
  for (const line of quiet('ps', ['-eo', 'pid=,args=']).split('\n')) {
    if (line.includes('containerd-shim-runc-v2') && line.includes(`${DIR}/`)) quiet('kill', ['-9', line.trim().split(/\s+/)[0]!]);
  }
  for (let i = 0; i < 50 && kubepodsProcesses().length > 0; i++) execFileSync('sleep', ['0.1']);
  const mounts = readFileSync('/proc/mounts', 'utf8').split('\n').map((l) => l.split(' ')[1] ?? '').filter((m) => m.startsWith(DIR) || m.startsWith('/run/netns/cni-'));
  for (const m of mounts.reverse()) quiet('umount', ['-l', m]);
  for (const ns of existsSync('/run/netns') ? readdirSync('/run/netns').filter((n) => n.startsWith('cni-')) : []) quiet('ip', ['netns', 'delete', ns]);
  quiet('ip', ['link', 'delete', 'bwe2e0']);
  for (const table of ['filter', 'nat', 'mangle']) {
    const rules = quiet('iptables-save', ['-t', table]);
    const ours = (chain: string) => /^(KUBE-|CNI-)/.test(chain);
    const kept = rules
      .split('\n')
      .filter((l) => !(l.startsWith(':') && ours(l.slice(1).split(' ')[0]!)) && !(l.startsWith('-A') && (ours(l.split(' ')[1]!) || / -j (KUBE-|CNI-)/.test(l))));
    if (kept.length !== rules.split('\n').length) sh('iptables-restore', [], kept.join('\n'));
  }
  for (const [key, value] of Object.entries(sysctls)) writeFileSync(`/proc/sys/${key}`, value);
  for (const hierarchy of readdirSync('/sys/fs/cgroup')) {
    const kubepods = join('/sys/fs/cgroup', hierarchy, 'kubepods');
    if (existsSync(kubepods)) removeCgroup(kubepods);
  }
  rmSync(join(DEVICE_PLUGINS, 'kubelet.sock'), { force: true });
  for (const dir of createdDirs) quiet('rmdir', [dir]);
  rmSync(DIR, { recursive: true, force: true });
  rmSync(LOCK, { force: true });
}

/** What a stopped cluster left on the machine (see undoMachineChanges), as readable lines. */
function leftovers(started: Started[], sysctls: Record<string, string>, createdDirs: string[]): string[] {
  const left: string[] = [];
  for (const s of started) if (s.child.exitCode === null && s.child.signalCode === null) left.push(`process ${s.name} (pid ${s.child.pid})`);
  left.push(...kubepodsProcesses().map((pid) => `pod process ${pid}`));
  for (const line of quiet('ps', ['-eo', 'pid=,args=']).split('\n')) if (line.includes('containerd-shim-runc-v2') && line.includes(`${DIR}/`)) left.push(`shim ${line.trim()}`);
  for (const m of readFileSync('/proc/mounts', 'utf8').split('\n').map((l) => l.split(' ')[1] ?? '')) if (m.startsWith(DIR) || m.startsWith('/run/netns/cni-')) left.push(`mount ${m}`);
  if (quiet('ip', ['link', 'show', 'bwe2e0'])) left.push('bridge bwe2e0');
  for (const table of ['filter', 'nat', 'mangle']) {
    for (const line of quiet('iptables-save', ['-t', table]).split('\n')) if (/^:(KUBE-|CNI-)/.test(line)) left.push(`iptables ${table} chain ${line.slice(1).split(' ')[0]}`);
  }
  for (const [key, value] of Object.entries(sysctls)) if (readFileSync(`/proc/sys/${key}`, 'utf8').trim() !== value) left.push(`sysctl ${key}`);
  for (const hierarchy of readdirSync('/sys/fs/cgroup')) if (existsSync(join('/sys/fs/cgroup', hierarchy, 'kubepods'))) left.push(`cgroup ${hierarchy}/kubepods`);
  for (const path of [DIR, LOCK, join(DEVICE_PLUGINS, 'kubelet.sock'), ...createdDirs]) if (existsSync(path)) left.push(`file ${path}`);
  return left;
}

/** PIDs in the kubepods cgroups of the memory hierarchy (every pod process is in one). */
function kubepodsProcesses(): string[] {
  const pids: string[] = [];
  const walk = (path: string) => {
    for (const entry of readdirSync(path, { withFileTypes: true })) {
      if (entry.isDirectory()) walk(join(path, entry.name));
      else if (entry.name === 'cgroup.procs') pids.push(...readFileSync(join(path, entry.name), 'utf8').split('\n').filter(Boolean));
    }
  };
  if (existsSync('/sys/fs/cgroup/memory/kubepods')) walk('/sys/fs/cgroup/memory/kubepods');
  return pids;
}

function removeCgroup(path: string): void {
  for (const entry of readdirSync(path, { withFileTypes: true })) if (entry.isDirectory()) removeCgroup(join(path, entry.name));
  try {
    rmdirSync(path);
  } catch {
    // still busy: a process the kill above missed; left for the next start's cleanup
  }
}

export async function startCluster(): Promise<Cluster> {
  const binaries = assets();
  const createdDirs = takeMachine();
  const started: Started[] = [];
  const sysctls = Object.fromEntries(SYSCTLS.filter((k) => existsSync(`/proc/sys/${k}`)).map((k) => [k, readFileSync(`/proc/sys/${k}`, 'utf8').trim()]));
  const l: NodeLayout = { dir: DIR, nodeIp: nodeIp(), nodeName: hostname(), podCidr: '10.244.0.0/24', serviceCidr: '10.96.0.0/16', pauseImage: 'registry.k8s.io/pause:breakwater-e2e', cniBin: '/usr/lib/cni' };
  const stop = async () => {
    for (const s of [...started].reverse()) {
      if (s.child.exitCode !== null || s.child.signalCode !== null) continue;
      s.child.kill('SIGTERM');
      await new Promise((r) => {
        const force = setTimeout(() => s.child.kill('SIGKILL'), 5000);
        s.child.once('exit', () => r(clearTimeout(force)));
      });
    }
    undoMachineChanges(sysctls, createdDirs);
    return leftovers(started, sysctls, createdDirs);
  };
  try {
    for (const sub of ['logs', 'cni', 'containerd', 'kubelet', 'etcd']) mkdirSync(join(DIR, sub), { recursive: true });
    const pki = join(DIR, 'pki');
    certificates(pki, l);
    for (const key of Object.keys(sysctls)) writeFileSync(`/proc/sys/${key}`, '1');
    const server = `https://${l.nodeIp}:${API_PORT}`;
    const admin = kubeconfig(DIR, 'admin', server);
    for (const name of ['kubelet', 'controller-manager', 'scheduler', 'kube-proxy']) kubeconfig(DIR, name, server);
    writeFileSync(join(DIR, 'webhook-client.kubeconfig'), `apiVersion: v1\nkind: Config\nusers: [{name: "*", user: {client-certificate: ${pki}/webhook-client.crt, client-key: ${pki}/webhook-client.key}}]\n`);
    writeFileSync(
      join(DIR, 'admission.yaml'),
      `apiVersion: apiserver.config.k8s.io/v1\nkind: AdmissionConfiguration\nplugins:\n  - name: MutatingAdmissionWebhook\n    configuration: {apiVersion: apiserver.config.k8s.io/v1, kind: WebhookAdmissionConfiguration, kubeConfigFile: ${DIR}/webhook-client.kubeconfig}\n`,
    );
    writeFileSync(join(DIR, 'containerd.toml'), containerdConfig(l));
    writeFileSync(join(DIR, 'cni', '10-breakwater-e2e.conflist'), cniConfig(l));
    writeFileSync(join(DIR, 'kubelet.yaml'), kubeletConfig(l));
    writeFileSync(join(DIR, 'kube-proxy.yaml'), kubeProxyConfig(l));
    writeFileSync(join(DIR, 'Corefile'), corefile(l));

    const node = (b: string) => join(binaries.node, b);
    const cp = (b: string) => join(binaries.controlPlane, b);
    start(started, DIR, 'etcd', cp('etcd'), [`--data-dir=${DIR}/etcd`, '--listen-client-urls=http://127.0.0.1:2379', '--advertise-client-urls=http://127.0.0.1:2379', '--listen-peer-urls=http://127.0.0.1:2380', '--unsafe-no-fsync=true', '--log-level=error']);
    start(started, DIR, 'containerd', node('containerd'), ['--config', join(DIR, 'containerd.toml')]);
    start(started, DIR, 'kube-apiserver', cp('kube-apiserver'), [
      '--etcd-servers=http://127.0.0.1:2379',
      `--advertise-address=${l.nodeIp}`,
      `--secure-port=${API_PORT}`,
      `--tls-cert-file=${pki}/apiserver.crt`,
      `--tls-private-key-file=${pki}/apiserver.key`,
      `--client-ca-file=${pki}/ca.crt`,
      `--kubelet-client-certificate=${pki}/apiserver-kubelet-client.crt`,
      `--kubelet-client-key=${pki}/apiserver-kubelet-client.key`,
      `--kubelet-certificate-authority=${pki}/ca.crt`,
      // The hostname maps to 127.0.0.1 in /etc/hosts: logs and exec would dial the wrong address.
      '--kubelet-preferred-address-types=InternalIP,Hostname',
      '--authorization-mode=Node,RBAC',
      `--service-account-issuer=https://kubernetes.default.svc.cluster.local`,
      `--service-account-key-file=${pki}/sa.pub`,
      `--service-account-signing-key-file=${pki}/sa.key`,
      `--service-cluster-ip-range=${l.serviceCidr}`,
      '--allow-privileged=true',
      `--admission-control-config-file=${DIR}/admission.yaml`,
    ]);
    await waitFor('kube-apiserver', 60_000, () => quiet('kubectl', ['--kubeconfig', admin, '--request-timeout=5s', 'get', '--raw', '/readyz']).trim() === 'ok', started);
    start(started, DIR, 'kube-controller-manager', node('kube-controller-manager'), [
      `--kubeconfig=${DIR}/controller-manager.kubeconfig`,
      `--authentication-kubeconfig=${DIR}/controller-manager.kubeconfig`,
      `--authorization-kubeconfig=${DIR}/controller-manager.kubeconfig`,
      `--service-account-private-key-file=${pki}/sa.key`,
      `--root-ca-file=${pki}/ca.crt`,
      '--use-service-account-credentials',
      '--leader-elect=false',
      `--service-cluster-ip-range=${l.serviceCidr}`,
      '--bind-address=127.0.0.1',
    ]);
    start(started, DIR, 'kube-scheduler', node('kube-scheduler'), [`--kubeconfig=${DIR}/scheduler.kubeconfig`, `--authentication-kubeconfig=${DIR}/scheduler.kubeconfig`, `--authorization-kubeconfig=${DIR}/scheduler.kubeconfig`, '--leader-elect=false', '--bind-address=127.0.0.1']);
    await waitFor('containerd', 30_000, () => existsSync(containerdSocket(l)), started);
    importPause(node('pause'), node('ctr'), l);
    start(started, DIR, 'kubelet', node('kubelet'), [`--config=${DIR}/kubelet.yaml`, `--kubeconfig=${DIR}/kubelet.kubeconfig`, `--root-dir=${DIR}/kubelet`, `--node-ip=${l.nodeIp}`, `--hostname-override=${l.nodeName}`]);
    start(started, DIR, 'kube-proxy', node('kube-proxy'), [`--config=${DIR}/kube-proxy.yaml`]);
    start(started, DIR, 'coredns', node('coredns'), ['-conf', join(DIR, 'Corefile')]);
    const kubectl = (args: string[], input?: string) => run('kubectl', ['--kubeconfig', admin, ...args], input);
    await waitFor('node Ready', 90_000, async () => (await kubectl(['get', 'node', l.nodeName, '-o', 'jsonpath={.status.conditions[?(@.type=="Ready")].status}'])).stdout === 'True', started);
    await waitFor('default ServiceAccount', 60_000, async () => (await kubectl(['get', 'serviceaccount', 'default'])).code === 0, started);
    return {
      kubeconfig: admin,
      nodeName: l.nodeName,
      kubectl,
      importImage: (archive) => void sh(node('ctr'), ['--address', containerdSocket(l), '-n', 'k8s.io', 'images', 'import', archive]),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** The sandbox image, from Kubernetes' own pause.c (built by build-node.sh), imported under a local tag so nothing is pulled. */
function importPause(pause: string, ctr: string, l: NodeLayout): void {
  const work = join(DIR, 'pause-image');
  mkdirSync(join(work, 'rootfs'), { recursive: true });
  execFileSync('cp', [pause, join(work, 'rootfs', 'pause')]);
  execFileSync('tar', ['-C', join(work, 'rootfs'), '-cf', join(work, 'layer.tar'), 'pause']);
  const layerDigest = sh('sha256sum', [join(work, 'layer.tar')]).split(' ')[0]!;
  const config = JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Entrypoint: ['/pause'], User: '65535:65535' }, rootfs: { type: 'layers', diff_ids: [`sha256:${layerDigest}`] } });
  writeFileSync(join(work, 'config.json'), config);
  writeFileSync(join(work, 'manifest.json'), JSON.stringify([{ Config: 'config.json', RepoTags: [l.pauseImage], Layers: ['layer.tar'] }]));
  execFileSync('tar', ['-C', work, '-cf', join(work, 'pause.tar'), 'manifest.json', 'config.json', 'layer.tar']);
  sh(ctr, ['--address', containerdSocket(l), '-n', 'k8s.io', 'images', 'import', join(work, 'pause.tar')]);
}

function run(cmd: string, args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
    child.stdin.end(input ?? '');
  });
}
