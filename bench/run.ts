/**
 * bench/ — measures the sidecar against its floor and its peers in one run on this machine (not a test).
 *
 * One model server (bench/streams, Go) answers a plain chat completion at once
 * and a streaming one with 60 events at 20–50 ms. It is called (a) directly,
 * (b) through nginx, (c) through the floor: a featureless Node proxy
 * (floor-proxy.ts), (d) through the sidecar on the default policy, (e) through
 * the sidecar on the full example policy (examples/policies/chat-policy.yaml),
 * (f) through the Portkey gateway (plain requests only), and for plain requests
 * (g) through the sidecar on the default policy logging every request (debug).
 *
 * Plain requests: wrk for closed-loop throughput, then vegeta open-loop at a
 * fixed rate in interleaved rounds, for latency and CPU time per request.
 * Streams: `streams load` holds N streams open at once and measures each
 * event's delay from the model server's write to its arrival; the proxy's
 * CPU per relayed event and its memory per open stream are read from /proc.
 * Everything is reported as a ratio to the floor. Writes bench/results/latest.{json,md}.
 * Run with `npm run bench` (installs the peers first). Loopback only.
 * `BENCH_BASELINE=<git ref> npm run bench` also runs that commit's sidecar on the default policy.
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
const STREAMS = join(ROOT, '.cache/bin/streams');
const PORTKEY = join(ROOT, '.cache/peers/node_modules/@portkey-ai/gateway/build/start-server.js');
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const STREAM_COUNTS = (process.env.BENCH_STREAMS ?? '500,2000').split(',').map(Number);
const STREAM_ROUNDS = Number(process.env.BENCH_STREAM_ROUNDS ?? 3);
const CONNECTIONS = 64;
const RATE = 500;
const UPSTREAM = 'http://127.0.0.1:18090';
/** A git ref whose sidecar runs beside this one (before/after in one run). */
const BASELINE = process.env.BENCH_BASELINE;

const work = mkdtempSync(join(tmpdir(), 'breakwater-bench-'));
const children: ChildProcess[] = [];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const REQUEST = JSON.stringify({ model: 'bench-model', messages: [{ role: 'user', content: 'Say hello.' }], max_tokens: 16 });

interface Target {
  name: string;
  url: string;
  headers: Record<string, string>;
  /** The process whose CPU and memory the path costs (the model server itself for direct). */
  pid: number;
  /** Relays streams too (Portkey is measured on plain requests only). */
  streams: boolean;
}

function start(command: string, args: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
  const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
  let err = '';
  child.stderr!.on('data', (d) => (err = (err + d).slice(-4000)));
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

function nginxProxy(port: number): ChildProcess {
  const file = join(work, 'nginx.conf');
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `${t}_temp_path ${work}/nginx-${t};`).join('\n  ');
  writeFileSync(
    file,
    `worker_processes 1;
daemon off;
pid ${work}/nginx.pid;
error_log ${work}/nginx.error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  ${temp}
  keepalive_requests 1000000;
  upstream model { server ${new URL(UPSTREAM).host}; keepalive 128; }
  server { listen 127.0.0.1:${port}; location / { proxy_pass http://model; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_buffering off; } }
}
`,
  );
  return start('nginx', ['-c', file]);
}

/** The bulkhead that lets one upstream hold the stream workload's 2,000 streams (the default is 32 in flight). */
const STREAM_BULKHEAD = '{maxConcurrent: 4096, maxQueue: 128, queueTimeout: 5s}';

/** examples/policies/minimal.yaml on the bench's model server: every field at its default but the bulkhead. */
function defaultPolicy(): string {
  const file = join(work, 'default.yaml');
  const minimal = readFileSync(join(ROOT, 'examples/policies/minimal.yaml'), 'utf8');
  writeFileSync(file, minimal.replace('https://api.openai.com', UPSTREAM).replace(/^upstreams:/m, `defaults:\n  bulkhead: ${STREAM_BULKHEAD}\nupstreams:`));
  return file;
}

/** examples/policies/chat-policy.yaml with every upstream on the bench's model server: guards, budget, SLOs, priorities, breakers, retries. */
function fullPolicy(): string {
  const file = join(work, 'full.yaml');
  const chat = readFileSync(join(ROOT, 'examples/policies/chat-policy.yaml'), 'utf8');
  writeFileSync(file, chat.replace(/url: \S+/g, `url: ${UPSTREAM}`).replace(/bulkhead: \{[^}]*\}/, `bulkhead: ${STREAM_BULKHEAD}`));
  return file;
}

function startBreakwater(policy: string, port: number, cli = join(ROOT, 'dist/cli.js'), env: NodeJS.ProcessEnv = {}): ChildProcess {
  return start(NODE, [...IMAGE_NODE_OPTIONS, cli, 'sidecar', '--policy', policy, '--listen', `127.0.0.1:${port}`, '--admin', `127.0.0.1:${port + 100}`], env);
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
    const child = startBreakwater(policy, 18009);
    await waitFor('http://127.0.0.1:18109/readyz');
    times.push(performance.now() - started);
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
  }
  return median(times);
}

interface Memory {
  /** Resident set, MiB. */
  rss: number;
  /** Its anonymous part (heap, buffers), without mapped files such as the node binary, MiB. */
  anon: number;
}

function memory(pid: number): Memory {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)![1]) / 1024;
  return { rss: kib('VmRSS'), anon: kib('RssAnon') };
}

/** The highest memory a process reaches while `during` runs, sampled every 50 ms. */
async function peakMemory<T>(pid: number, during: Promise<T>): Promise<{ peak: Memory; result: T }> {
  const peak = { rss: 0, anon: 0 };
  const sample = () => {
    const now = memory(pid);
    peak.rss = Math.max(peak.rss, now.rss);
    peak.anon = Math.max(peak.anon, now.anon);
  };
  const sampler = setInterval(sample, 50);
  try {
    return { result: await during, peak };
  } finally {
    clearInterval(sampler);
    sample();
  }
}

/** CPU seconds (user + system) a process has used so far. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length / 2;
  return sorted.length % 2 ? sorted[Math.floor(mid)]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function run(command: string, args: string[], input?: string | Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'inherit'] });
    const out: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve(Buffer.concat(out)) : reject(new Error(`${command} exited ${code}`))));
    child.stdin.end(input);
  });
}

interface Throughput {
  rps: number;
  errors: number;
}

async function wrk(target: Target, connections: number, seconds: number): Promise<Throughput> {
  const script = join(work, `${target.name}.lua`);
  const headers = Object.entries({ 'Content-Type': 'application/json', ...target.headers }).map(([k, v]) => `wrk.headers["${k}"] = "${v}"`);
  writeFileSync(script, [`wrk.method = "POST"`, `wrk.body = '${REQUEST}'`, ...headers].join('\n') + '\n');
  const out = (await run('wrk', ['-t', '1', '-c', String(connections), '-d', `${seconds}s`, '-s', script, target.url])).toString();
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? 0);
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);
  const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  return { rps, errors: non2xx + (socketErrors ? socketErrors.slice(1).reduce((s, n) => s + Number(n), 0) : 0) };
}

interface Latency {
  p50: number;
  p99: number;
  errors: number;
  /** CPU time the path's process spent per request at this fixed rate, µs. */
  cpuMicros: number;
}

async function vegeta(target: Target, rate: number, seconds: number): Promise<Latency> {
  const cpuBefore = cpuSeconds(target.pid);
  const bodyFile = join(work, 'body.json');
  writeFileSync(bodyFile, REQUEST);
  const headerArgs = Object.entries({ 'Content-Type': 'application/json', ...target.headers }).flatMap(([k, v]) => ['-header', `${k}: ${v}`]);
  const attack = await run(VEGETA, ['attack', `-rate=${rate}`, `-duration=${seconds}s`, `-body=${bodyFile}`, ...headerArgs], `POST ${target.url}\n`);
  const cpuMicros = ((cpuSeconds(target.pid) - cpuBefore) * 1e6) / (rate * seconds);
  const report = JSON.parse((await run(VEGETA, ['report', '-type=json'], attack)).toString()) as { latencies: Record<string, number>; success: number; requests: number };
  return { p50: report.latencies['50th']! / 1e6, p99: report.latencies['99th']! / 1e6, errors: Math.round(report.requests * (1 - report.success)), cpuMicros };
}

interface StreamRun {
  streams: number;
  dropped: number;
  events: number;
  delayP50Ms: number;
  delayP99Ms: number;
  delayMaxMs: number;
  /** CPU time the path's process spent per relayed event, µs. */
  cpuMicrosPerEvent: number;
  /** Peak memory while the streams were open, and its rise over the memory just before, per stream (KiB). */
  peak: Memory;
  perStreamKiB: Memory;
  firstError?: string;
  /** In the results: CPU per event of every round (the figures are the median round's). */
  rounds?: number[];
}

async function streamLoad(target: Target, streams: number): Promise<StreamRun> {
  await sleep(1000); // let the last run's connections close
  const before = memory(target.pid);
  const cpuBefore = cpuSeconds(target.pid);
  const header = Object.entries(target.headers).map(([k, v]) => `${k}:${v}`)[0] ?? '';
  const load = run(STREAMS, ['load', '-url', target.url, '-streams', String(streams), '-ramp', '1s', ...(header ? ['-header', header] : [])]);
  const { peak, result } = await peakMemory(target.pid, load);
  const report = JSON.parse(result.toString()) as { completed: number; dropped: number; events: number; delayP50Ms: number; delayP99Ms: number; delayMaxMs: number; firstError?: string };
  const cpu = cpuSeconds(target.pid) - cpuBefore;
  return {
    streams,
    dropped: report.dropped,
    events: report.events,
    delayP50Ms: report.delayP50Ms,
    delayP99Ms: report.delayP99Ms,
    delayMaxMs: report.delayMaxMs,
    cpuMicrosPerEvent: (cpu * 1e6) / Math.max(1, report.events),
    peak,
    perStreamKiB: { rss: ((peak.rss - before.rss) * 1024) / streams, anon: ((peak.anon - before.anon) * 1024) / streams },
    ...(report.firstError && { firstError: report.firstError }),
  };
}

let stopping = false;
function stopAll(): void {
  stopping = true;
  // SIGTERM: nginx's master then stops its worker too (SIGKILL would orphan it).
  for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
}
process.on('exit', stopAll);

interface Result {
  idle: Memory;
  throughput: Throughput;
  latency: Latency;
  /** Memory after the plain-request runs. */
  afterPlain: Memory;
  streams: StreamRun[];
}

async function main(): Promise<void> {
  const model = start(STREAMS, ['upstream', '-listen', new URL(UPSTREAM).host]);
  const nginx = nginxProxy(18081);
  const floor = start(NODE, [...IMAGE_NODE_OPTIONS, join(ROOT, 'bench/floor-proxy.ts'), '18082', UPSTREAM]);
  const portkey = start(NODE, [PORTKEY, '--port=18787', '--headless'], { NODE_ENV: 'production' });
  const [defaults, full] = [defaultPolicy(), fullPolicy()];
  const readyMs = await timeToReady(defaults);
  const breakwater = startBreakwater(defaults, 18001);
  const breakwaterFull = startBreakwater(full, 18002);
  // A clean success's log line is a debug line: this one logs every request, as `breakwater.dev/log-level: debug` does.
  const breakwaterLogged = startBreakwater(defaults, 18004, undefined, { BREAKWATER_LOG_LEVEL: 'debug' });
  const baseline = BASELINE ? startBreakwater(defaults, 18003, buildBaseline(BASELINE)) : undefined;
  // nginx serves from one worker process, the master's only child.
  const nginxWorker = () => Number(readFileSync(`/proc/${nginx.pid}/task/${nginx.pid}/children`, 'utf8').trim().split(' ')[0]);
  await sleep(300);
  const chat = '/v1/chat/completions';
  const targets: Target[] = [
    { name: 'direct', url: `${UPSTREAM}${chat}`, headers: {}, pid: model.pid!, streams: true },
    { name: 'nginx', url: `http://127.0.0.1:18081${chat}`, headers: {}, pid: nginxWorker(), streams: true },
    { name: 'floor', url: `http://127.0.0.1:18082${chat}`, headers: {}, pid: floor.pid!, streams: true },
    { name: 'breakwater', url: `http://127.0.0.1:18001/openai${chat}`, headers: {}, pid: breakwater.pid!, streams: true },
    { name: 'breakwater-full', url: `http://127.0.0.1:18002/vllm${chat}`, headers: {}, pid: breakwaterFull.pid!, streams: true },
    { name: 'breakwater-logged', url: `http://127.0.0.1:18004/openai${chat}`, headers: {}, pid: breakwaterLogged.pid!, streams: false },
    ...(baseline ? [{ name: `breakwater@${BASELINE}`, url: `http://127.0.0.1:18003/openai${chat}`, headers: {}, pid: baseline.pid!, streams: true }] : []),
    {
      name: 'portkey',
      url: `http://127.0.0.1:18787${chat}`,
      headers: { 'x-portkey-provider': 'openai', 'x-portkey-custom-host': `${UPSTREAM}/v1`, authorization: 'Bearer sk-bench' },
      pid: portkey.pid!,
      streams: false,
    },
  ];
  for (const t of targets) await waitFor(t.url, { method: 'POST', body: REQUEST, headers: { 'content-type': 'application/json', ...t.headers } });
  await sleep(1000);
  const results: Record<string, Result> = {};
  for (const t of targets) results[t.name] = { idle: memory(t.pid), throughput: { rps: 0, errors: 0 }, latency: { p50: 0, p99: 0, errors: 0, cpuMicros: 0 }, afterPlain: { rss: 0, anon: 0 }, streams: [] };

  for (const t of targets) {
    await wrk(t, CONNECTIONS, 2); // warm-up
    results[t.name]!.throughput = await wrk(t, CONNECTIONS, SECONDS);
    process.stdout.write(`${t.name}: ${results[t.name]!.throughput.rps.toFixed(0)} req/s\n`);
  }
  // Open-loop rounds, the targets in a rotating order, so drift on this shared machine falls on all alike.
  const rounds: Record<string, Latency[]> = Object.fromEntries(targets.map((t) => [t.name, []]));
  for (let round = 0; round < ROUNDS; round++) {
    for (let i = 0; i < targets.length; i++) {
      const t = targets[(i + round) % targets.length]!;
      const latency = await vegeta(t, RATE, SECONDS);
      rounds[t.name]!.push(latency);
      process.stdout.write(`round ${round + 1} ${t.name}: p50 ${latency.p50.toFixed(3)} p99 ${latency.p99.toFixed(3)} ms, ${latency.cpuMicros.toFixed(0)} µs CPU/req, ${latency.errors} errors\n`);
    }
  }
  for (const t of targets) {
    const r = rounds[t.name]!;
    results[t.name]!.latency = { p50: median(r.map((l) => l.p50)), p99: median(r.map((l) => l.p99)), errors: r.reduce((s, l) => s + l.errors, 0), cpuMicros: median(r.map((l) => l.cpuMicros)) };
    results[t.name]!.afterPlain = memory(t.pid);
  }
  // Stream rounds too rotate the targets; each figure is the run with the median CPU per event (its delay and memory with it), and drops add up.
  const streamTargets = targets.filter((t) => t.streams);
  for (const count of STREAM_COUNTS) {
    const runs: Record<string, StreamRun[]> = Object.fromEntries(streamTargets.map((t) => [t.name, []]));
    for (let round = 0; round < STREAM_ROUNDS; round++) {
      for (let i = 0; i < streamTargets.length; i++) {
        const t = streamTargets[(i + round) % streamTargets.length]!;
        const s = await streamLoad(t, count);
        runs[t.name]!.push(s);
        process.stdout.write(`round ${round + 1} ${count} streams via ${t.name}: ${s.dropped} dropped, delay p50 ${s.delayP50Ms.toFixed(2)} p99 ${s.delayP99Ms.toFixed(2)} ms, ${s.cpuMicrosPerEvent.toFixed(1)} µs CPU/event, peak ${s.peak.anon.toFixed(1)} MiB anon${s.firstError ? `, first error: ${s.firstError}` : ''}\n`);
      }
    }
    for (const t of streamTargets) {
      const byCpu = [...runs[t.name]!].sort((a, b) => a.cpuMicrosPerEvent - b.cpuMicrosPerEvent);
      const middle = byCpu[Math.floor((byCpu.length - 1) / 2)]!;
      results[t.name]!.streams.push({ ...middle, dropped: byCpu.reduce((n, r) => n + r.dropped, 0), rounds: byCpu.map((r) => r.cpuMicrosPerEvent) });
    }
  }
  report(targets, results, readyMs);
  stopAll();
}

function report(targets: Target[], results: Record<string, Result>, readyMs: number): void {
  const direct = results.direct!;
  const floor = results.floor!;
  const streamAt = (name: string, count: number) => results[name]!.streams.find((s) => s.streams === count);
  const proxies = targets.filter((t) => t.name !== 'direct').map((t) => t.name);
  const summary = {
    date: new Date().toISOString(),
    node: spawnSync(NODE, ['--version'], { encoding: 'utf8' }).stdout.trim(),
    nodeOptions: IMAGE_NODE_OPTIONS,
    seconds: SECONDS,
    rounds: ROUNDS,
    connections: CONNECTIONS,
    rate: RATE,
    readyMs,
    results,
    vsFloor: Object.fromEntries(
      proxies.map((name) => {
        const r = results[name]!;
        return [
          name,
          {
            cpuPerRequest: r.latency.cpuMicros / floor.latency.cpuMicros,
            addedP99Ms: r.latency.p99 - direct.latency.p99,
            idleAnonMiB: r.idle.anon - floor.idle.anon,
            streams: r.streams.map((s) => {
              const f = streamAt('floor', s.streams)!;
              const d = streamAt('direct', s.streams)!;
              return { streams: s.streams, cpuPerEvent: s.cpuMicrosPerEvent / f.cpuMicrosPerEvent, addedDelayP99Ms: s.delayP99Ms - d.delayP99Ms, peakAnonOverFloorMiB: s.peak.anon - f.peak.anon };
            }),
          },
        ];
      }),
    ),
  };
  writeFileSync(join(ROOT, 'bench/results/latest.json'), JSON.stringify(summary, null, 2) + '\n');
  const x = (v: number) => `${v.toFixed(2)}×`;
  const plainRow = (name: string) => {
    const r = results[name]!;
    const added = name === 'direct' ? '—' : `${(r.latency.p50 - direct.latency.p50).toFixed(2)} / ${(r.latency.p99 - direct.latency.p99).toFixed(2)}`;
    return `| ${name} | ${r.throughput.rps.toFixed(0)} | ${r.latency.p50.toFixed(2)} / ${r.latency.p99.toFixed(2)} | ${added} | ${r.latency.cpuMicros.toFixed(0)} | ${x(r.latency.cpuMicros / floor.latency.cpuMicros)} | ${r.idle.rss.toFixed(1)} / ${r.idle.anon.toFixed(1)} | ${r.afterPlain.rss.toFixed(1)} / ${r.afterPlain.anon.toFixed(1)} | ${r.throughput.errors + r.latency.errors} |`;
  };
  const streamRows = STREAM_COUNTS.flatMap((count) =>
    targets
      .filter((t) => t.streams)
      .map((t) => {
        const s = streamAt(t.name, count)!;
        const f = streamAt('floor', count)!;
        const d = streamAt('direct', count)!;
        const added = t.name === 'direct' ? '—' : (s.delayP99Ms - d.delayP99Ms).toFixed(2);
        return `| ${count} | ${t.name} | ${s.dropped} | ${s.delayP50Ms.toFixed(2)} / ${s.delayP99Ms.toFixed(2)} | ${added} | ${s.cpuMicrosPerEvent.toFixed(1)} | ${x(s.cpuMicrosPerEvent / f.cpuMicrosPerEvent)} | ${s.peak.rss.toFixed(1)} / ${s.peak.anon.toFixed(1)} | ${(s.peak.anon - f.peak.anon).toFixed(1)} | ${s.perStreamKiB.anon.toFixed(1)} |`;
      }),
  );
  const md = `Benchmark run ${summary.date} on ${summary.node}; 2 cores shared by the load generators, the proxies and the model server.
Node proxies (the floor and the sidecars) run as the image runs them: node ${IMAGE_NODE_OPTIONS.join(' ')}.

**Plain requests.** Throughput: wrk, 1 thread, ${CONNECTIONS} connections, ${SECONDS} s. Latency and CPU: vegeta open-loop at ${RATE} req/s for ${SECONDS} s, median of ${ROUNDS} interleaved rounds. Memory in MiB, RSS / anonymous (RssAnon).

| path | req/s | p50 / p99 ms | added p50 / p99 ms | CPU µs/req | CPU vs floor | idle memory | after the runs | errors |
|---|---|---|---|---|---|---|---|---|
${['direct', ...proxies].map(plainRow).join('\n')}

**Streams.** N streams at once (starts spread over 1 s), each 60 events at 20–50 ms; ${STREAM_ROUNDS} rounds, the targets in a rotating order, each row the round with the median CPU per event (drops summed over the rounds). Delay: from the model server's write to the client's read, per event. Memory: the peak while the streams were open, MiB RSS / anonymous.

| streams | path | dropped | delay p50 / p99 ms | added p99 ms | CPU µs/event | CPU vs floor | peak memory | anon over floor MiB | anon KiB/stream |
|---|---|---|---|---|---|---|---|---|---|
${streamRows.join('\n')}

- Sidecar start to ready (/readyz 200): ${readyMs.toFixed(0)} ms (median of 7).
`;
  writeFileSync(join(ROOT, 'bench/results/latest.md'), md);
  process.stdout.write(`\n${md}`);
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack}\n`);
  stopAll();
  process.exit(1);
});
