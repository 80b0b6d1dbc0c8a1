/**
 * bench/ — measures the sidecar against peers in one run on this machine (not a test).
 *
 * One tiny upstream (nginx answering a fixed chat completion) is called
 * (a) directly, (b) through nginx as a plain reverse proxy, (c) through the
 * Portkey gateway, (d) through the Breakwater sidecar with a full policy
 * (breaker, retry, timeouts, bulkhead, metrics and request logs on). Load: wrk
 * for closed-loop throughput, vegeta for open-loop latency at a fixed rate.
 * Writes bench/results/latest.json and bench/results/latest.md.
 * Run with `npm run bench` (installs the peers first). Loopback only.
 * `BENCH_BASELINE=<git ref> npm run bench` also builds that commit and runs
 * its sidecar on the same policy in the same run, for before/after figures.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { IMAGE_NODE_OPTIONS } from './image-node-options.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const NODE = process.execPath;
const VEGETA = join(ROOT, '.cache/bin/vegeta');
const PORTKEY = join(ROOT, '.cache/peers/node_modules/@portkey-ai/gateway/build/start-server.js');
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const CONNECTIONS = 64;
const RATE = 500;
const PORTS = { upstream: 18080, nginx: 18081, portkey: 18787, breakwater: 18001, admin: 18021, withFallback: 18002, withFallbackAdmin: 18022, baseline: 18003, baselineAdmin: 18023 };
/** A git ref whose sidecar runs beside this one (before/after in one run). */
const BASELINE = process.env.BENCH_BASELINE;

const work = mkdtempSync(join(tmpdir(), 'breakwater-bench-'));
const children: ChildProcess[] = [];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const COMPLETION = JSON.stringify({
  id: 'chatcmpl-bench',
  object: 'chat.completion',
  created: 1,
  model: 'bench-model',
  choices: [{ index: 0, message: { role: 'assistant', content: 'Hello from the benchmark upstream.' }, finish_reason: 'stop' }],
  usage: { prompt_tokens: 9, completion_tokens: 6, total_tokens: 15 },
});
const REQUEST = JSON.stringify({ model: 'bench-model', messages: [{ role: 'user', content: 'Say hello.' }], max_tokens: 16 });

interface Target {
  name: string;
  url: string;
  headers: Record<string, string>;
  /** The process whose CPU the request path costs (the proxy; the upstream for direct). */
  pid?: number;
}

const TARGETS: Target[] = [
  { name: 'direct', url: `http://127.0.0.1:${PORTS.upstream}/v1/chat/completions`, headers: {} },
  { name: 'nginx', url: `http://127.0.0.1:${PORTS.nginx}/v1/chat/completions`, headers: {} },
  { name: 'breakwater', url: `http://127.0.0.1:${PORTS.breakwater}/primary/v1/chat/completions`, headers: {} },
  // The same policy with a fallback chain (another upstream, cache, static) that the healthy upstream never needs.
  { name: 'breakwater+fallback', url: `http://127.0.0.1:${PORTS.withFallback}/primary/v1/chat/completions`, headers: {} },
  {
    name: 'portkey',
    url: `http://127.0.0.1:${PORTS.portkey}/v1/chat/completions`,
    headers: { 'x-portkey-provider': 'openai', 'x-portkey-custom-host': `http://127.0.0.1:${PORTS.upstream}/v1`, authorization: 'Bearer sk-bench' },
  },
  ...(BASELINE ? [{ name: `breakwater@${BASELINE}`, url: `http://127.0.0.1:${PORTS.baseline}/primary/v1/chat/completions`, headers: {} }] : []),
];

function nginxConfig(name: string, server: string): string {
  const file = join(work, `${name}.conf`);
  writeFileSync(
    file,
    `worker_processes 1;
daemon off;
pid ${work}/${name}.pid;
error_log ${work}/${name}.error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${work}/${name}-body;
  proxy_temp_path ${work}/${name}-proxy;
  fastcgi_temp_path ${work}/${name}-fcgi;
  uwsgi_temp_path ${work}/${name}-uwsgi;
  scgi_temp_path ${work}/${name}-scgi;
  keepalive_requests 1000000;
  ${server}
}
`,
  );
  return file;
}

function start(command: string, args: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
  const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  child.on('exit', (code) => {
    if (code && code !== 0 && !stopping) process.stderr.write(`${command} exited ${code}: ${err}\n`);
  });
  children.push(child);
  return child;
}

async function waitFor(url: string, init: RequestInit = {}, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    try {
      const res = await fetch(url, init);
      await res.arrayBuffer();
      if (res.status < 500) return;
    } catch {
      // not up yet
    }
    if (Date.now() > end) throw new Error(`${url} did not come up`);
    await sleep(5);
  }
}

function breakwaterPolicy(withFallback = false): string {
  const file = join(work, withFallback ? 'policy-fallback.yaml' : 'policy.yaml');
  const fallback = withFallback ? `
    fallback: [{upstream: secondary, model: small}, {cache: {}}, {static: {message: busy}}]
  - name: secondary
    url: http://127.0.0.1:${PORTS.upstream}` : '';
  writeFileSync(
    file,
    `upstreams:
  - name: primary
    url: http://127.0.0.1:${PORTS.upstream}
    api: openai
    timeouts: {total: 30s, attempt: 10s, firstByte: 5s, streamIdle: 5s, perOutputToken: 100ms}
    retry: {attempts: 3, backoff: {base: 100ms, max: 2s}, budget: {ratio: 20, minPerSecond: 5, window: 10s}}
    circuitBreaker: {scope: model, consecutiveFailures: 5, failureRate: {threshold: 50, minRequests: 20, window: 30s}}
    bulkhead: {maxConcurrent: 512, maxQueue: 1024, queueTimeout: 5s}${fallback}
shutdown: {drainTimeout: 1s}
`,
  );
  return file;
}

function startBreakwater(policy: string, port = PORTS.breakwater, adminPort = PORTS.admin, cli = join(ROOT, 'dist/cli.js')): ChildProcess {
  return start(NODE, [...IMAGE_NODE_OPTIONS, cli, 'sidecar', '--policy', policy, '--listen', `127.0.0.1:${port}`, '--admin', `127.0.0.1:${adminPort}`]);
}

/** Builds the sidecar of git ref `ref` (with this checkout's node_modules); returns its cli.js. */
function buildBaseline(ref: string): string {
  const dir = join(work, 'baseline');
  const archive = spawnSync('git', ['archive', '--format=tar', ref], { cwd: ROOT, maxBuffer: 1 << 30 });
  if (archive.status !== 0) throw new Error(`git archive ${ref}: ${archive.stderr}`);
  spawnSync('mkdir', ['-p', dir]);
  spawnSync('tar', ['-x', '-C', dir], { input: archive.stdout });
  spawnSync('ln', ['-s', join(ROOT, 'node_modules'), join(dir, 'node_modules')]);
  const tsc = spawnSync(NODE, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], { cwd: dir, encoding: 'utf8' });
  if (tsc.status !== 0) throw new Error(`building ${ref}: ${tsc.stdout}`);
  return join(dir, 'dist/cli.js');
}

/** Median time from spawn to /readyz answering 200, over several starts. */
async function timeToReady(policy: string, runs = 7): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const started = performance.now();
    const child = startBreakwater(policy);
    await waitFor(`http://127.0.0.1:${PORTS.admin}/readyz`);
    times.push(performance.now() - started);
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(runs / 2)]!;
}

/** Resident memory in MiB: total, and the anonymous part (heap, buffers) without mapped files such as the node binary. */
function rssMiB(pid: number): { total: number; anon: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)![1]) / 1024;
  return { total: kib('VmRSS'), anon: kib('RssAnon') };
}

/** CPU seconds (user + system) a process has used so far. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
}

function wrkScript(target: Target): string {
  const file = join(work, `${target.name}.lua`);
  const headers = Object.entries({ 'Content-Type': 'application/json', ...target.headers })
    .map(([k, v]) => `wrk.headers["${k}"] = "${v}"`)
    .join('\n');
  writeFileSync(file, `wrk.method = "POST"\nwrk.body = '${REQUEST}'\n${headers}\n`);
  return file;
}

interface Throughput {
  rps: number;
  errors: number;
}

function wrk(target: Target, connections: number, seconds: number): Throughput {
  const out = spawnSync('wrk', ['-t', '1', '-c', String(connections), '-d', `${seconds}s`, '-s', wrkScript(target), target.url], { encoding: 'utf8' }).stdout;
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? 0);
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);
  const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const errors = non2xx + (socketErrors ? socketErrors.slice(1).reduce((s, n) => s + Number(n), 0) : 0);
  return { rps, errors };
}

interface Latency {
  p50: number;
  p99: number;
  success: number;
  /** CPU time the proxy spent per request at this fixed rate, in microseconds. */
  cpuMicrosPerRequest: number;
}

function vegeta(target: Target, rate: number, seconds: number): Latency {
  const cpuBefore = target.pid ? cpuSeconds(target.pid) : 0;
  const bodyFile = join(work, 'body.json');
  writeFileSync(bodyFile, REQUEST);
  const headerArgs = Object.entries({ 'Content-Type': 'application/json', ...target.headers }).flatMap(([k, v]) => ['-header', `${k}: ${v}`]);
  const attack = spawnSync(VEGETA, ['attack', `-rate=${rate}`, `-duration=${seconds}s`, `-body=${bodyFile}`, ...headerArgs], { input: `POST ${target.url}\n`, maxBuffer: 1 << 30 });
  const report = spawnSync(VEGETA, ['report', '-type=json'], { input: attack.stdout, encoding: 'utf8', maxBuffer: 1 << 30 });
  const json = JSON.parse(report.stdout) as { latencies: Record<string, number>; success: number; requests: number };
  const cpuMicrosPerRequest = target.pid ? ((cpuSeconds(target.pid) - cpuBefore) * 1e6) / json.requests : NaN;
  return { p50: json.latencies['50th']! / 1e6, p99: json.latencies['99th']! / 1e6, success: json.success, cpuMicrosPerRequest };
}

let stopping = false;
function stopAll(): void {
  stopping = true;
  // SIGTERM: nginx's master then stops its workers too (SIGKILL would orphan them).
  for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
}
process.on('exit', stopAll);

async function main(): Promise<void> {
  const upstream = start('nginx', ['-c', nginxConfig('upstream', `server { listen 127.0.0.1:${PORTS.upstream}; location / { default_type application/json; return 200 '${COMPLETION}'; } }`)]);
  const nginxProxy = start('nginx', [
    '-c',
    nginxConfig(
      'proxy',
      `upstream model { server 127.0.0.1:${PORTS.upstream}; keepalive 128; }
  server { listen 127.0.0.1:${PORTS.nginx}; location / { proxy_pass http://model; proxy_http_version 1.1; proxy_set_header Connection ""; } }`,
    ),
  ]);
  const portkey = start(NODE, [PORTKEY, `--port=${PORTS.portkey}`, '--headless'], { NODE_ENV: 'production' });
  const policy = breakwaterPolicy();
  const readyMs = await timeToReady(policy);
  const sidecar = startBreakwater(policy);
  const withFallback = startBreakwater(breakwaterPolicy(true), PORTS.withFallback, PORTS.withFallbackAdmin);
  const baseline = BASELINE ? startBreakwater(policy, PORTS.baseline, PORTS.baselineAdmin, buildBaseline(BASELINE)) : undefined;
  if (baseline) await waitFor(`http://127.0.0.1:${PORTS.baselineAdmin}/readyz`);
  await waitFor(`http://127.0.0.1:${PORTS.admin}/readyz`);
  await waitFor(`http://127.0.0.1:${PORTS.withFallbackAdmin}/readyz`);
  for (const t of TARGETS) await waitFor(t.url, { method: 'POST', body: REQUEST, headers: { 'content-type': 'application/json', ...t.headers } });
  await sleep(500);
  const idleRss = rssMiB(sidecar.pid!);
  // nginx serves from one worker process, the master's only child.
  const nginxWorker = (pid: number) => Number(readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(' ')[0]);
  const pids: Record<string, number> = { direct: nginxWorker(upstream.pid!), nginx: nginxWorker(nginxProxy.pid!), breakwater: sidecar.pid!, 'breakwater+fallback': withFallback.pid!, portkey: portkey.pid! };
  if (baseline) pids[`breakwater@${BASELINE}`] = baseline.pid!;
  for (const t of TARGETS) t.pid = pids[t.name];

  const results: Record<string, { throughput: Throughput; latency: Latency }> = {};
  for (const t of TARGETS) {
    wrk(t, CONNECTIONS, 2); // warm-up
    const throughput = wrk(t, CONNECTIONS, SECONDS);
    const latency = vegeta(t, RATE, SECONDS);
    results[t.name] = { throughput, latency };
    process.stdout.write(`${t.name}: ${throughput.rps.toFixed(0)} req/s (${throughput.errors} errors); at ${RATE}/s p50 ${latency.p50.toFixed(3)} ms p99 ${latency.p99.toFixed(3)} ms, ${latency.cpuMicrosPerRequest.toFixed(0)} µs CPU/req, success ${(latency.success * 100).toFixed(1)}%\n`);
  }

  // Before/after: the two sidecars in alternating rounds, so drift on this shared machine falls on both alike.
  const abRounds: { after: Latency & Throughput; before: Latency & Throughput }[] = [];
  if (BASELINE) {
    const [after, before] = [TARGETS.find((t) => t.name === 'breakwater')!, TARGETS.find((t) => t.name === `breakwater@${BASELINE}`)!];
    const measure = (t: Target) => ({ ...wrk(t, CONNECTIONS, SECONDS / 2), ...vegeta(t, RATE, SECONDS / 2) });
    for (let round = 0; round < 5; round++) {
      const pair = round % 2 === 0 ? { after: measure(after), before: measure(before) } : { before: measure(before), after: measure(after) };
      abRounds.push(pair);
      process.stdout.write(`A/B round ${round + 1}: CPU µs/req ${pair.after.cpuMicrosPerRequest.toFixed(0)} vs ${pair.before.cpuMicrosPerRequest.toFixed(0)}, req/s ${pair.after.rps.toFixed(0)} vs ${pair.before.rps.toFixed(0)}, p99 ${pair.after.p99.toFixed(2)} vs ${pair.before.p99.toFixed(2)} ms\n`);
    }
  }
  const median = (values: number[]) => values.sort((a, b) => a - b)[Math.floor(values.length / 2)]!; // rounds are odd
  const ab = BASELINE && {
    rounds: abRounds.length,
    cpuMicrosPerRequest: { after: median(abRounds.map((r) => r.after.cpuMicrosPerRequest)), before: median(abRounds.map((r) => r.before.cpuMicrosPerRequest)) },
    rps: { after: median(abRounds.map((r) => r.after.rps)), before: median(abRounds.map((r) => r.before.rps)) },
    p99: { after: median(abRounds.map((r) => r.after.p99)), before: median(abRounds.map((r) => r.before.p99)) },
  };

  // RSS under 200 concurrent requests: sample while wrk holds 200 connections busy.
  const peakRss = { total: 0, anon: 0 };
  const sampler = setInterval(() => {
    const now = rssMiB(sidecar.pid!);
    peakRss.total = Math.max(peakRss.total, now.total);
    peakRss.anon = Math.max(peakRss.anon, now.anon);
  }, 100);
  const loaded = spawn('wrk', ['-t', '1', '-c', '200', '-d', `${SECONDS}s`, '-s', wrkScript(TARGETS[2]!), TARGETS[2]!.url], { stdio: 'ignore' });
  await new Promise((r) => loaded.once('exit', r));
  clearInterval(sampler);

  const bw = results.breakwater!;
  const direct = results.direct!;
  const summary = {
    date: new Date().toISOString(),
    node: spawnSync(NODE, ['--version'], { encoding: 'utf8' }).stdout.trim(),
    seconds: SECONDS,
    connections: CONNECTIONS,
    rate: RATE,
    results,
    ratios: {
      throughputVsNginx: bw.throughput.rps / results.nginx!.throughput.rps,
      throughputVsPortkey: bw.throughput.rps / results.portkey!.throughput.rps,
      cpuPerRequestVsNginx: bw.latency.cpuMicrosPerRequest / results.nginx!.latency.cpuMicrosPerRequest,
      cpuPerRequestPortkeyVsBreakwater: results.portkey!.latency.cpuMicrosPerRequest / bw.latency.cpuMicrosPerRequest,
      throughputWithUnusedFallbackVsPlain: results['breakwater+fallback']!.throughput.rps / bw.throughput.rps,
    },
    ...(ab && { againstBaseline: { ref: BASELINE, ...ab } }),
    addedLatencyMs: Object.fromEntries(
      TARGETS.filter((t) => t.name !== 'direct').map((t) => [t.name, { p50: results[t.name]!.latency.p50 - direct.latency.p50, p99: results[t.name]!.latency.p99 - direct.latency.p99 }]),
    ),
    sidecar: { readyMs, idleRssMiB: idleRss, peakRssUnder200ConcurrentMiB: peakRss },
  };
  writeFileSync(join(ROOT, 'bench/results/latest.json'), JSON.stringify(summary, null, 2) + '\n');
  const row = (name: string) => {
    const r = results[name]!;
    const added = summary.addedLatencyMs[name as keyof typeof summary.addedLatencyMs];
    return `| ${name} | ${r.throughput.rps.toFixed(0)} | ${r.latency.p50.toFixed(2)} | ${r.latency.p99.toFixed(2)} | ${added ? `${added.p50.toFixed(2)} / ${added.p99.toFixed(2)}` : '—'} | ${r.latency.cpuMicrosPerRequest.toFixed(0)} | ${r.throughput.errors} |`;
  };
  const md = `Benchmark run ${summary.date} on ${summary.node}, 2 cores shared by load generator, proxy and upstream.
Throughput: wrk, 1 thread, ${CONNECTIONS} connections, ${SECONDS} s. Latency: vegeta open-loop at ${RATE} req/s for ${SECONDS} s.
Sidecar run as the image runs it: node ${IMAGE_NODE_OPTIONS.join(' ')}.

| path | req/s | p50 ms | p99 ms | added p50 / p99 ms | CPU µs/req at ${RATE}/s | errors |
|---|---|---|---|---|---|---|
${TARGETS.map((t) => row(t.name)).join('\n')}

- Breakwater throughput: **${(summary.ratios.throughputVsNginx * 100).toFixed(0)}% of nginx**, **${summary.ratios.throughputVsPortkey.toFixed(1)}× Portkey**.
- With a fallback chain configured but unused: **${(summary.ratios.throughputWithUnusedFallbackVsPlain * 100).toFixed(0)}%** of the plain sidecar's throughput.
- Breakwater CPU per request: ${(bw.latency.cpuMicrosPerRequest / results.nginx!.latency.cpuMicrosPerRequest).toFixed(1)}× nginx's, ${(results.portkey!.latency.cpuMicrosPerRequest / bw.latency.cpuMicrosPerRequest).toFixed(1)}× less than Portkey's.
- Sidecar RSS: ${idleRss.total.toFixed(1)} MiB idle (${idleRss.anon.toFixed(1)} anonymous), peak ${peakRss.total.toFixed(1)} MiB (${peakRss.anon.toFixed(1)} anonymous) under 200 concurrent requests.
- Sidecar start to ready (/readyz 200): ${readyMs.toFixed(0)} ms (median of 7).
${ab ? `- Against ${BASELINE}, medians of ${ab.rounds} alternating rounds in this run: CPU µs/req at ${RATE}/s ${ab.cpuMicrosPerRequest.after.toFixed(0)} vs ${ab.cpuMicrosPerRequest.before.toFixed(0)} (×${(ab.cpuMicrosPerRequest.after / ab.cpuMicrosPerRequest.before).toFixed(2)}), throughput ${ab.rps.after.toFixed(0)} vs ${ab.rps.before.toFixed(0)} req/s (×${(ab.rps.after / ab.rps.before).toFixed(2)}), p99 ${ab.p99.after.toFixed(2)} vs ${ab.p99.before.toFixed(2)} ms.\n` : ''}`;
  writeFileSync(join(ROOT, 'bench/results/latest.md'), md);
  process.stdout.write(`\n${md}`);
  stopAll();
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack}\n`);
  stopAll();
  process.exit(1);
});
