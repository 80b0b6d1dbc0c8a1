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
 * Every path runs in a fresh process in each round, the paths in an order that
 * rotates by round. Plain requests, sent as the openai SDK sends them (a 1.5 KB
 * request, its headers; a 2.2 KB answer with usage), open loop at a fixed
 * rate after a warm-up, by two harnesses that must agree: vegeta, and
 * `streams plain` (this project's, over keep-alive connections); then the
 * same rate in once-a-second bursts, as autocannon's -R sends it, for the CPU
 * per request when requests overlap. The proxy's CPU per request is read from
 * /proc. Streams: `streams load` holds N streams open at once and measures each
 * event's delay from the model server's write to its arrival; the proxy's
 * CPU per relayed event and its memory per open stream are read from /proc.
 * Everything is reported as a ratio to the floor. Writes bench/results/latest.{json,md}, and the results
 * section of docs/performance.md.
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
const WARMUP_SECONDS = Number(process.env.BENCH_WARMUP_SECONDS ?? 3);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const STREAM_COUNTS = (process.env.BENCH_STREAMS ?? '500,2000').split(',').filter(Boolean).map(Number);
/** Only these paths (and the floor), e.g. BENCH_ONLY=breakwater: for a quick look, not for figures. */
const ONLY = process.env.BENCH_ONLY?.split(',');
const CONNECTIONS = 32;
const RATE = 500;
const UPSTREAM = 'http://127.0.0.1:18090';
/** A git ref whose sidecar runs beside this one (before/after in one run). */
const BASELINE = process.env.BENCH_BASELINE;

const work = mkdtempSync(join(tmpdir(), 'breakwater-bench-'));
const children: ChildProcess[] = [];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

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

interface Plain {
  p50: number;
  p99: number;
  errors: number;
  /** CPU time the path's process spent per request, µs. */
  cpuMicros: number;
}

/** The request both harnesses send: `streams request`'s chat request (~1.5 KB) and the openai SDK's headers. */
const SDK_REQUEST = JSON.parse(spawnSync(STREAMS, ['request'], { encoding: 'utf8' }).stdout || '{}') as { body: string; headers: Record<string, string> };

/** Harness 1: vegeta, open loop at RATE, requests evenly spaced, its own keep-alive connections. */
async function vegeta(target: Target, seconds: number): Promise<Plain> {
  const cpuBefore = cpuSeconds(target.pid);
  const bodyFile = join(work, 'body.json');
  writeFileSync(bodyFile, SDK_REQUEST.body);
  const headerArgs = Object.entries({ ...SDK_REQUEST.headers, ...target.headers }).flatMap(([k, v]) => ['-header', `${k}: ${v}`]);
  const attack = await run(VEGETA, ['attack', `-rate=${RATE}`, `-duration=${seconds}s`, `-body=${bodyFile}`, ...headerArgs], `POST ${target.url}\n`);
  const cpuMicros = ((cpuSeconds(target.pid) - cpuBefore) * 1e6) / (RATE * seconds);
  const report = JSON.parse((await run(VEGETA, ['report', '-type=json'], attack)).toString()) as { latencies: Record<string, number>; success: number; requests: number };
  return { p50: report.latencies['50th']! / 1e6, p99: report.latencies['99th']! / 1e6, errors: Math.round(report.requests * (1 - report.success)), cpuMicros };
}

/** Harness 2: `streams plain`, open loop at RATE over CONNECTIONS keep-alive connections (one client each), in bursts of `burst` requests. */
async function streamsPlain(target: Target, seconds: number, burst = 1): Promise<Plain> {
  const cpuBefore = cpuSeconds(target.pid);
  const headerArgs = Object.entries(target.headers).flatMap(([k, v]) => ['-header', `${k}:${v}`]);
  const out = await run(STREAMS, ['plain', '-url', target.url, '-rate', String(RATE), '-connections', String(CONNECTIONS), '-duration', `${seconds}s`, '-burst', String(burst), ...headerArgs]);
  const r = JSON.parse(out.toString()) as { requests: number; errors: number; p50Ms: number; p99Ms: number; firstError?: string };
  if (r.firstError) process.stderr.write(`${target.name}: ${r.firstError}\n`);
  return { p50: r.p50Ms, p99: r.p99Ms, errors: r.errors, cpuMicros: ((cpuSeconds(target.pid) - cpuBefore) * 1e6) / r.requests };
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

/** One target's figures in one round (its own fresh process). */
interface Round {
  idle: Memory;
  vegeta: Plain;
  streamsPlain: Plain;
  bursts: Plain;
  /** Memory after the plain requests. */
  afterPlain: Memory;
  streams: StreamRun[];
}

/** A path under test: how to start a fresh process for it, and which process its costs are read from. */
interface Path {
  name: string;
  url: string;
  headers: Record<string, string>;
  streams: boolean;
  /** Starts the path's process; returns the pid its CPU and memory are read from, and how to stop it. */
  start(): Promise<{ pid: number; stop(): Promise<void> }>;
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
  children.splice(children.indexOf(child), 1);
}

/** A path served by one child process (or nginx's worker). */
function childPath(name: string, url: string, spawnIt: () => ChildProcess, opts: { headers?: Record<string, string>; streams?: boolean; pidOf?: (c: ChildProcess) => number } = {}): Path {
  return {
    name,
    url,
    headers: opts.headers ?? {},
    streams: opts.streams ?? true,
    async start() {
      const child = spawnIt();
      await waitFor(url, { method: 'POST', body: SDK_REQUEST.body, headers: { ...SDK_REQUEST.headers, ...opts.headers } });
      return { pid: opts.pidOf ? opts.pidOf(child) : child.pid!, stop: () => stopChild(child) };
    },
  };
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length / 2;
  return sorted.length % 2 ? sorted[Math.floor(mid)]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

async function measure(path: Path, round: number): Promise<Round> {
  const { pid, stop } = await path.start();
  try {
    const target: Target = { name: path.name, url: path.url, headers: path.headers, pid, streams: path.streams };
    await sleep(300);
    const idle = memory(pid);
    await streamsPlain(target, WARMUP_SECONDS); // steady state: connections open, code optimized
    // The two harnesses, in an order that alternates by round.
    const harnesses = [() => vegeta(target, SECONDS), () => streamsPlain(target, SECONDS)];
    const [first, second] = round % 2 ? [harnesses[1]!, harnesses[0]!] : harnesses;
    const a = await first!();
    const b = await second!();
    const [v, sp] = round % 2 ? [b, a] : [a, b];
    const bursts = await streamsPlain(target, SECONDS, RATE);
    const afterPlain = memory(pid);
    const streams: StreamRun[] = [];
    if (path.streams) for (const count of STREAM_COUNTS) streams.push(await streamLoad(target, count));
    const line = (p: Plain) => `${p.cpuMicros.toFixed(0)} µs CPU/req, p50 ${p.p50.toFixed(2)} p99 ${p.p99.toFixed(2)} ms${p.errors ? `, ${p.errors} errors` : ''}`;
    process.stdout.write(`round ${round + 1} ${path.name}: vegeta ${line(v)}; streams plain ${line(sp)}; bursts ${line(bursts)}\n`);
    for (const s of streams) process.stdout.write(`round ${round + 1} ${s.streams} streams via ${path.name}: ${s.dropped} dropped, delay p50 ${s.delayP50Ms.toFixed(2)} p99 ${s.delayP99Ms.toFixed(2)} ms, ${s.cpuMicrosPerEvent.toFixed(1)} µs CPU/event, ${s.perStreamKiB.anon.toFixed(1)} KiB anon/stream${s.firstError ? `, first error: ${s.firstError}` : ''}\n`);
    return { idle, vegeta: v, streamsPlain: sp, bursts, afterPlain, streams };
  } finally {
    await stop();
  }
}

async function main(): Promise<void> {
  const model = start(STREAMS, ['upstream', '-listen', new URL(UPSTREAM).host]);
  const [defaults, full] = [defaultPolicy(), fullPolicy()];
  const readyMs = await timeToReady(defaults);
  const baselineCli = BASELINE ? buildBaseline(BASELINE) : undefined;
  const chat = '/v1/chat/completions';
  // nginx serves from one worker process, the master's only child.
  const nginxWorker = (master: ChildProcess) => Number(readFileSync(`/proc/${master.pid}/task/${master.pid}/children`, 'utf8').trim().split(' ')[0]);
  const paths: Path[] = [
    { name: 'direct', url: `${UPSTREAM}${chat}`, headers: {}, streams: true, start: async () => ({ pid: model.pid!, stop: async () => {} }) },
    childPath('nginx', `http://127.0.0.1:18081${chat}`, () => nginxProxy(18081), { pidOf: nginxWorker }),
    childPath('floor', `http://127.0.0.1:18082${chat}`, () => start(NODE, [...IMAGE_NODE_OPTIONS, join(ROOT, 'bench/floor-proxy.ts'), '18082', UPSTREAM])),
    childPath('breakwater', `http://127.0.0.1:18001/openai${chat}`, () => startBreakwater(defaults, 18001)),
    childPath('breakwater-full', `http://127.0.0.1:18002/vllm${chat}`, () => startBreakwater(full, 18002)),
    // A clean success's log line is a debug line: this one logs every request, as `breakwater.dev/log-level: debug` does.
    childPath('breakwater-logged', `http://127.0.0.1:18004/openai${chat}`, () => startBreakwater(defaults, 18004, undefined, { BREAKWATER_LOG_LEVEL: 'debug' }), { streams: false }),
    ...(baselineCli ? [childPath(`breakwater@${BASELINE}`, `http://127.0.0.1:18003/openai${chat}`, () => startBreakwater(defaults, 18003, baselineCli))] : []),
    childPath('portkey', `http://127.0.0.1:18787${chat}`, () => start(NODE, [PORTKEY, '--port=18787', '--headless'], { NODE_ENV: 'production' }), {
      headers: { 'x-portkey-provider': 'openai', 'x-portkey-custom-host': `${UPSTREAM}/v1` },
      streams: false,
    }),
  ].filter((p) => ONLY === undefined || ONLY.includes(p.name) || p.name === 'floor');
  await waitFor(`${UPSTREAM}${chat}`, { method: 'POST', body: SDK_REQUEST.body });
  // Rounds: every path in a fresh process, in an order that rotates by round, so drift on this shared machine falls on all alike.
  const rounds: Record<string, Round[]> = Object.fromEntries(paths.map((p) => [p.name, []]));
  for (let round = 0; round < ROUNDS; round++) {
    for (let i = 0; i < paths.length; i++) {
      const path = paths[(i + round) % paths.length]!;
      rounds[path.name]!.push(await measure(path, round));
    }
  }
  report(paths, rounds, readyMs);
  stopAll();
}

/** The figures of each path: the median of its rounds, each figure on its own. */
interface Summary {
  idle: Memory;
  afterPlain: Memory;
  vegeta: Plain;
  streamsPlain: Plain;
  bursts: Plain;
  streams: (StreamRun & { rounds: number[] })[];
}

function summarize(list: Round[]): Summary {
  const plain = (pick: (r: Round) => Plain): Plain => ({
    p50: median(list.map((r) => pick(r).p50)),
    p99: median(list.map((r) => pick(r).p99)),
    errors: list.reduce((n, r) => n + pick(r).errors, 0),
    cpuMicros: median(list.map((r) => pick(r).cpuMicros)),
  });
  const mem = (pick: (r: Round) => Memory): Memory => ({ rss: median(list.map((r) => pick(r).rss)), anon: median(list.map((r) => pick(r).anon)) });
  // Each stream figure is the round with the median CPU per event (its delay and memory with it); drops add up.
  const streams = STREAM_COUNTS.flatMap((count) => {
    const runs = list.flatMap((r) => r.streams.filter((s) => s.streams === count)).sort((a, b) => a.cpuMicrosPerEvent - b.cpuMicrosPerEvent);
    if (runs.length === 0) return [];
    const middle = runs[Math.floor((runs.length - 1) / 2)]!;
    return [{ ...middle, dropped: runs.reduce((n, r) => n + r.dropped, 0), rounds: runs.map((r) => r.cpuMicrosPerEvent) }];
  });
  return { idle: mem((r) => r.idle), afterPlain: mem((r) => r.afterPlain), vegeta: plain((r) => r.vegeta), streamsPlain: plain((r) => r.streamsPlain), bursts: plain((r) => r.bursts), streams };
}

function report(paths: Path[], rounds: Record<string, Round[]>, readyMs: number): void {
  const results = Object.fromEntries(paths.map((p) => [p.name, summarize(rounds[p.name]!)]));
  const floor = results.floor!;
  const direct = results.direct;
  const streamAt = (name: string, count: number) => results[name]!.streams.find((s) => s.streams === count);
  const proxies = paths.filter((p) => p.name !== 'direct').map((p) => p.name);
  const summary = {
    date: new Date().toISOString(),
    node: spawnSync(NODE, ['--version'], { encoding: 'utf8' }).stdout.trim(),
    nodeOptions: IMAGE_NODE_OPTIONS,
    seconds: SECONDS,
    warmupSeconds: WARMUP_SECONDS,
    rounds: ROUNDS,
    connections: CONNECTIONS,
    rate: RATE,
    readyMs,
    results,
    perRound: rounds,
    vsFloor: Object.fromEntries(
      proxies.map((name) => {
        const r = results[name]!;
        return [
          name,
          {
            cpuPerRequest: { vegeta: r.vegeta.cpuMicros / floor.vegeta.cpuMicros, streamsPlain: r.streamsPlain.cpuMicros / floor.streamsPlain.cpuMicros, bursts: r.bursts.cpuMicros / floor.bursts.cpuMicros },
            addedCpuMicros: { vegeta: r.vegeta.cpuMicros - floor.vegeta.cpuMicros, streamsPlain: r.streamsPlain.cpuMicros - floor.streamsPlain.cpuMicros, bursts: r.bursts.cpuMicros - floor.bursts.cpuMicros },
            idleAnonMiB: r.idle.anon - floor.idle.anon,
            streams: r.streams.map((s) => {
              const f = streamAt('floor', s.streams)!;
              return { streams: s.streams, cpuPerEvent: s.cpuMicrosPerEvent / f.cpuMicrosPerEvent, perStreamKiB: s.perStreamKiB.anon / f.perStreamKiB.anon };
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
    const cpu = (pick: (s: Summary) => Plain) => `${pick(r).cpuMicros.toFixed(0)} (${x(pick(r).cpuMicros / pick(floor).cpuMicros)})`;
    const agree = r.streamsPlain.cpuMicros / r.vegeta.cpuMicros;
    const errors = r.vegeta.errors + r.streamsPlain.errors + r.bursts.errors;
    return `| ${name} | ${cpu((s) => s.vegeta)} | ${cpu((s) => s.streamsPlain)} | ${x(agree)} | ${cpu((s) => s.bursts)} | ${r.vegeta.p50.toFixed(2)} / ${r.vegeta.p99.toFixed(2)} | ${r.idle.rss.toFixed(1)} / ${r.idle.anon.toFixed(1)} | ${r.afterPlain.rss.toFixed(1)} / ${r.afterPlain.anon.toFixed(1)} | ${errors} |`;
  };
  const streamRows = STREAM_COUNTS.flatMap((count) =>
    paths
      .filter((p) => p.streams && streamAt(p.name, count))
      .map((p) => {
        const s = streamAt(p.name, count)!;
        const f = streamAt('floor', count)!;
        const d = direct && streamAt('direct', count);
        const added = p.name === 'direct' || !d ? '—' : (s.delayP99Ms - d.delayP99Ms).toFixed(2);
        return `| ${count} | ${p.name} | ${s.dropped} | ${s.delayP50Ms.toFixed(2)} / ${s.delayP99Ms.toFixed(2)} | ${added} | ${s.cpuMicrosPerEvent.toFixed(1)} | ${x(s.cpuMicrosPerEvent / f.cpuMicrosPerEvent)} | ${s.peak.rss.toFixed(1)} / ${s.peak.anon.toFixed(1)} | ${s.perStreamKiB.anon.toFixed(1)} (${x(s.perStreamKiB.anon / f.perStreamKiB.anon)}) |`;
      }),
  );
  const md = `Benchmark run ${summary.date} on ${summary.node}; 2 cores shared by the load generators, the proxies and the model server (bench/streams).
Node proxies (the floor and the sidecars) run as the image runs them: node ${IMAGE_NODE_OPTIONS.join(' ')}. ${ROUNDS} rounds; in each, every path runs in a fresh process, the paths in an order that rotates by round; each figure is the median of the rounds.

**Plain requests** as the openai SDK sends them (a 1.5 KB chat request with the SDK's 12 headers; a 2.2 KB answer with usage and OpenAI's answer headers), at ${RATE} req/s open loop, ${SECONDS} s each after a ${WARMUP_SECONDS} s warm-up. CPU is the path's process's user + system time per request, in µs, and its ratio to the floor's in the same run.
- **vegeta**: requests evenly spaced, over the keep-alive connections vegeta opens (a handful at this rate).
- **streams plain** (bench/streams/plain.go, this project's own load generator): requests evenly spaced over ${CONNECTIONS} keep-alive connections, one client each. The two harnesses alternate which goes first.
- **bursts**: streams plain sending each second's ${RATE} requests at once, as autocannon's \`-R\` does (each connection sends its share of the second back to back, then waits for the next second). Requests that arrive together share the proxy's wake-ups and warm caches: every proxy costs less per request this way.

| path | CPU µs/req, vegeta | streams plain | streams plain ÷ vegeta | bursts | p50 / p99 ms (vegeta) | idle memory MiB, RSS / anon | after the runs | errors |
|---|---|---|---|---|---|---|---|---|
${paths.map((p) => p.name).map(plainRow).join('\n')}

**Streams.** N streams at once (starts spread over 1 s), each 60 events at 20–50 ms; each row the round with the median CPU per event (drops summed over the rounds). Delay: from the model server's write to the client's read, per event. Memory: the peak while the streams were open, MiB RSS / anonymous, and the rise of anonymous memory per open stream over the memory just before.

| streams | path | dropped | delay p50 / p99 ms | added p99 ms | CPU µs/event | CPU vs floor | peak memory | anon KiB/stream (vs floor) |
|---|---|---|---|---|---|---|---|---|
${streamRows.join('\n')}

- Sidecar start to ready (/readyz 200): ${readyMs.toFixed(0)} ms (median of 7).
`;
  writeFileSync(join(ROOT, 'bench/results/latest.md'), md);
  writeIntoDocs(md);
  process.stdout.write(`\n${md}`);
}

/** docs/performance.md shows the latest results between its markers: the run rewrites them, nobody edits them by hand. */
function writeIntoDocs(md: string): void {
  const file = join(ROOT, 'docs/performance.md');
  const [start, end] = ['<!-- bench:results -->', '<!-- /bench:results -->'];
  const doc = readFileSync(file, 'utf8');
  const from = doc.indexOf(start);
  const to = doc.indexOf(end);
  if (from < 0 || to < from) throw new Error(`${file} has no ${start} … ${end} section for the results`);
  writeFileSync(file, `${doc.slice(0, from + start.length)}\n${md}\n${doc.slice(to)}`);
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack}\n`);
  stopAll();
  process.exit(1);
});
