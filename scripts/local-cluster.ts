/**
 * `npm run cluster`: a local single-node Kubernetes cluster with Breakwater
 * installed, to try it on a machine without one (Linux, as root: it is the
 * e2e's cluster, test/support/cluster.ts). It builds the image, starts the
 * cluster, loads the image, and any docker-archives given as arguments (your
 * app's images), into the node's containerd (no registry), installs
 * the chart with helm, says how to reach the cluster, and stays up until
 * Ctrl-C (or SIGTERM); then it tears everything down and says whether
 * anything was left on the machine.
 */
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { startCluster } from '../test/support/cluster.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const IMAGE = 'breakwater:local';
const ARCHIVE = '/var/tmp/breakwater-local-image.tar';

const step = (what: string) => process.stdout.write(`==> ${what}\n`);
const run = (cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env) => execFileSync(cmd, args, { encoding: 'utf8', env, stdio: ['ignore', 'pipe', 'inherit'] }).trim();

step('building the image (scripts/build-image.sh; the first build takes a few minutes)');
run('bash', [`${ROOT}/scripts/build-image.sh`, IMAGE, ARCHIVE], { ...process.env, BASES: process.env.BASES ?? 'local' });
step('starting a single-node cluster (etcd, the control plane, containerd, kubelet, kube-proxy, CoreDNS)');
const cluster = await startCluster();
let stopping = false;
const stop = async (code: number) => {
  if (stopping) return;
  stopping = true;
  step('tearing the cluster down');
  const left = await cluster.stop();
  rmSync(ARCHIVE, { force: true });
  process.stdout.write(left.length === 0 ? 'nothing was left on the machine\n' : `left on the machine:\n${left.map((l) => `  ${l}`).join('\n')}\n`);
  process.exit(left.length === 0 ? code : 1);
};
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => void stop(0));
try {
  step('loading the images into the node (no registry)');
  for (const archive of [ARCHIVE, ...process.argv.slice(2)]) cluster.importImage(archive);
  step('installing the chart with helm');
  const helm = process.env.HELM ?? run('bash', [`${ROOT}/scripts/build-helm.sh`]).split('\n').at(-1)!;
  run(helm, ['install', 'breakwater', `${ROOT}/charts/breakwater`, '--kubeconfig', cluster.kubeconfig, '-n', 'breakwater-system', '--create-namespace', '--set', 'image.repository=breakwater', '--set', 'image.tag=local', '--set', 'image.pullPolicy=Never', '--wait', '--timeout', '5m']);
} catch (err) {
  process.stderr.write(`${(err as Error).message}\n`);
  await stop(1);
}
process.stdout.write(`
Breakwater is installed on a local cluster (node ${cluster.nodeName}). In another shell:

  export KUBECONFIG=${cluster.kubeconfig}
  kubectl get pods -n breakwater-system
  kubectl create namespace shop
  kubectl label namespace shop breakwater.dev/inject=enabled
  kubectl apply -n shop -f examples/policies/chat-policy.yaml
  kubectl get rp -n shop

Pods can use the images given as arguments (\`npm run cluster -- app.tar\`, docker-archives) with imagePullPolicy: Never.
Press Ctrl-C to tear it all down.
`);
