/**
 * Controller fleet benchmark (not a test): the chart's controller replicas
 * (REPLICAS=2 by default, as the chart deploys), a real kube-apiserver, and a
 * simulated fleet of N sidecars — N real pods, N real pod-bound tokens, N TLS
 * config streams that report back what they applied, as sidecars do, spread
 * over the replicas as the controller's Service spreads them. Measures the time
 * from `kubectl apply` of a changed policy until every stream has the new
 * generation (and until status says SYNCED N: the leader sums what the other
 * replica recorded), and each replica's resident memory. Writes
 * bench/results/controller-fleet.{json,md}. Run with `npm run bench:controller`
 * (FLEET=1000 by default). Loopback only.
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { issueServingCertificate, startControlPlane } from '../test/support/control-plane.js';
import { CONTROLLER_NODE_FLAGS, IMAGE_NODE_OPTIONS } from './image-node-options.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const FLEET = Number(process.env.FLEET ?? 1000);
const REPLICAS = Number(process.env.REPLICAS ?? 2);
const NS = 'fleet';
const CONCURRENCY = 50;

async function inBatches<T>(items: T[], fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < items.length) await fn(items[next++]!);
  }));
}

const policy = (attempts: number) =>
  stringify({
    apiVersion: 'breakwater.dev/v1alpha1',
    kind: 'ResiliencePolicy',
    metadata: { name: 'fleet', namespace: NS },
    spec: { podSelector: { matchLabels: { app: 'fleet' } }, upstreams: [{ name: 'primary', url: 'http://127.0.0.1:9', retry: { attempts } }] },
  });

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;

async function main(): Promise<void> {
  const cp = await startControlPlane();
  try {
    const kubectl = async (args: string[], input?: string) => {
      const r = await cp.kubectl(args, input);
      if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr}`);
      return r.stdout;
    };
    await cp.installCrd();
    await kubectl(['create', 'namespace', NS]);
    await kubectl(['create', 'namespace', 'breakwater-system']); // where the controller's leader Lease lives
    await kubectl(['-n', NS, 'create', 'serviceaccount', 'app']);
    await kubectl(['apply', '-f', '-'], policy(1));
    const kc = new KubeConfig();
    kc.loadFromFile(cp.kubeconfig);
    const core = kc.makeApiClient(CoreV1Api);
    const names = Array.from({ length: FLEET }, (_, i) => `app-${i}`);
    let t = performance.now();
    await inBatches(names, (name) =>
      core.createNamespacedPod({
        namespace: NS,
        body: { metadata: { name, labels: { app: 'fleet', 'breakwater.dev/injected': 'true' } }, spec: { serviceAccountName: 'app', containers: [{ name: 'app', image: 'app:1' }] } },
      }),
    );
    const tokens = new Map<string, string>();
    await inBatches(names, async (name) => {
      const r = await core.createNamespacedServiceAccountToken({
        name: 'app',
        namespace: NS,
        body: { spec: { audiences: ['breakwater.dev'], expirationSeconds: 3600, boundObjectRef: { kind: 'Pod', apiVersion: 'v1', name } } },
      });
      tokens.set(name, r.status?.token ?? '');
    });
    process.stdout.write(`${FLEET} pods and tokens in ${((performance.now() - t) / 1000).toFixed(1)} s\n`);

    const tls = issueServingCertificate(cp.dir, 'controller');
    const startReplica = (n: number) => {
      const args = [...IMAGE_NODE_OPTIONS, ...CONTROLLER_NODE_FLAGS, join(ROOT, 'dist/cli.js'), 'controller', '--kubeconfig', cp.kubeconfig, '--tls-cert', tls.cert, '--tls-key', tls.key, '--config-listen', '127.0.0.1:0', '--health-listen', '127.0.0.1:0', '--identity', `controller-${n}`];
      const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
      if (process.env.FLEET_LOGS) child.stdout!.on('data', (d) => process.stderr.write(d));
      return new Promise<{ child: typeof child; configUrl: string; healthUrl: string }>((resolve, reject) => {
        child.once('exit', (code) => reject(new Error(`controller replica ${n} exited (${code}) before it listened`)));
        let out = '';
        const onData = (d: Buffer) => {
          out += d;
          const m = /"configUrl":"([^"]+)","healthUrl":"([^"]+)"/.exec(out);
          if (!m) return;
          child.stdout!.off('data', onData);
          child.stdout!.resume();
          resolve({ child, configUrl: m[1]!, healthUrl: m[2]! });
        };
        child.stdout!.on('data', onData);
      });
    };
    const replicas = await Promise.all(Array.from({ length: REPLICAS }, (_, n) => startReplica(n)));
    const replicaOf = (name: string) => replicas[Number(name.slice('app-'.length)) % REPLICAS]!;

    // The simulated fleet: each stream reports what it applied, as a sidecar does.
    const agent = new Agent({ keepAlive: true, maxSockets: Infinity, ca: readFileSync(join(cp.dir, 'ca.crt')) });
    const generationAt = new Map<string, Map<number, number>>();
    const reportApplied = (name: string, version: unknown) => {
      const body = JSON.stringify({ applied: version, breakers: { primary: { closed: 1, halfOpen: 0, open: 0 } } });
      const req = request(`${replicaOf(name).configUrl}/v1/report?pod=${name}`, { ca: agent.options.ca, agent: false, method: 'POST', headers: { authorization: `Bearer ${tokens.get(name)}`, 'content-type': 'application/json' } }, (res) => res.resume());
      req.on('error', () => {});
      req.end(body);
    };
    t = performance.now();
    await inBatches(names, (name) =>
      new Promise<void>((resolve, reject) => {
        const req = request(`${replicaOf(name).configUrl}/v1/config?pod=${name}`, { agent, headers: { authorization: `Bearer ${tokens.get(name)}` } }, (res) => {
          if (res.statusCode !== 200) return reject(new Error(`${name}: ${res.statusCode}`));
          let buffer = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            buffer += chunk;
            let end: number;
            while ((end = buffer.indexOf('\n\n')) >= 0) {
              const block = buffer.slice(0, end);
              buffer = buffer.slice(end + 2);
              const data = /^data: (.*)$/m.exec(block)?.[1];
              if (!block.startsWith('event: snapshot') || !data) continue;
              const version = (JSON.parse(data) as { version: { generation: number } }).version;
              let seen = generationAt.get(name);
              if (!seen) generationAt.set(name, (seen = new Map()));
              seen.set(version.generation, performance.now());
              reportApplied(name, version);
              resolve();
            }
          });
        });
        req.on('error', reject);
        req.end();
      }),
    );
    process.stdout.write(`${FLEET} streams connected and configured in ${((performance.now() - t) / 1000).toFixed(1)} s\n`);
    const synced = async (generation: number) => {
      const status = JSON.parse(await kubectl(['-n', NS, 'get', 'rp', 'fleet', '-o', 'json'])).status;
      return status?.observedGeneration === generation && status.pods?.synced === FLEET;
    };
    while (!(await synced(1))) await new Promise((r) => setTimeout(r, 200));
    await new Promise((r) => setTimeout(r, 1000));

    const applyAt = performance.now();
    await kubectl(['apply', '-f', '-'], policy(2));
    const applyReturnedMs = performance.now() - applyAt;
    while (![...generationAt.values()].every((g) => g.has(2))) await new Promise((r) => setTimeout(r, 10));
    const delays = [...generationAt.values()].map((g) => g.get(2)! - applyAt).sort((a, b) => a - b);
    while (!(await synced(2))) await new Promise((r) => setTimeout(r, 50));
    const syncedMs = performance.now() - applyAt;
    const memoryOf = async ({ child: replica, healthUrl }: (typeof replicas)[number]) => {
      const metrics = await (await fetch(`${healthUrl}/metrics`)).text();
      const value = (name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+]+)$`, 'm').exec(metrics)?.[1] ?? NaN);
      const metric = (name: string) => value(name) / 1048576;
      const status = readFileSync(`/proc/${replica.pid}/status`, 'utf8');
      const mib = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)![1]) / 1024;
      // utime + stime, in clock ticks (100 a second on Linux).
      const [utime, stime] = readFileSync(`/proc/${replica.pid}/stat`, 'utf8').split(') ')[1]!.split(' ').slice(11, 13).map(Number);
      return {
        leader: value('breakwater_controller_leader') === 1,
        cpuSeconds: (utime! + stime!) / 100,
        rssMiB: { now: mib('VmRSS'), peak: mib('VmHWM'), anonymous: mib('RssAnon') },
        heapMiB: { used: metric('breakwater_controller_process_nodejs_heap_size_used_bytes'), total: metric('breakwater_controller_process_nodejs_heap_size_total_bytes'), external: metric('breakwater_controller_process_nodejs_external_memory_bytes') },
      };
    };
    const result = {
      date: new Date().toISOString(),
      fleet: FLEET,
      replicas: REPLICAS,
      kubectlApplyMs: applyReturnedMs,
      newGenerationAtSidecarMs: { p50: percentile(delays, 50), p99: percentile(delays, 99), max: delays.at(-1)! },
      statusSyncedMs: syncedMs,
      controllers: await Promise.all(replicas.map(memoryOf)),
    };
    writeFileSync(join(ROOT, 'bench/results/controller-fleet.json'), JSON.stringify(result, null, 2) + '\n');
    const memoryRow = (c: (typeof result.controllers)[number], n: number) =>
      `| replica ${n}${c.leader ? ' (leader)' : ''}: RSS now / peak (anonymous); JS heap used / total, external; CPU for the whole run | ${c.rssMiB.now.toFixed(0)} / ${c.rssMiB.peak.toFixed(0)} MiB (${c.rssMiB.anonymous.toFixed(0)}); ${c.heapMiB.used.toFixed(0)} / ${c.heapMiB.total.toFixed(0)} MiB, ${c.heapMiB.external.toFixed(0)} MiB; ${c.cpuSeconds.toFixed(1)} s |`;
    const md = `Controller fleet benchmark, ${result.date}: ${FLEET} simulated sidecars (real pods, pod-bound tokens, TLS config streams) spread over ${REPLICAS} controller replicas (node ${[...IMAGE_NODE_OPTIONS, ...CONTROLLER_NODE_FLAGS].join(' ')}, as the image and chart run it; ${Math.ceil(FLEET / REPLICAS)} streams each at most) and a local kube-apiserver v1.37.2, all on 2 cores.

| measure | value |
|---|---|
| \`kubectl apply\` → new generation at every sidecar, p50 / p99 / max | ${result.newGenerationAtSidecarMs.p50.toFixed(0)} / ${result.newGenerationAtSidecarMs.p99.toFixed(0)} / ${result.newGenerationAtSidecarMs.max.toFixed(0)} ms |
| \`kubectl apply\` → status SYNCED ${FLEET} | ${result.statusSyncedMs.toFixed(0)} ms |
| \`kubectl apply\` itself | ${result.kubectlApplyMs.toFixed(0)} ms |
${result.controllers.map(memoryRow).join('\n')}
`;
    writeFileSync(join(ROOT, 'bench/results/controller-fleet.md'), md);
    process.stdout.write(`\n${md}`);
    agent.destroy();
    for (const { child: replica } of replicas) replica.kill('SIGTERM');
  } finally {
    await cp.stop();
  }
  process.exit(0);
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack}\n`);
  process.exit(1);
});
