/**
 * bench/ — measures the sidecar against its floor and its peers in one run on this machine (not a test).
 *
 * One model server (bench/streams, Go) answers a plain chat completion at once
 * and a streaming one with 60 events at 20–50 ms. It is called (a) directly,
 * (b) through nginx, (c) through the floor: a featureless Node proxy
 * (floor-proxy.ts), (d) through the sidecar on the default policy, (e) through
 * the sidecar on the full example policy (examples/policies/chat-policy.yaml),
 * (f) through the Portkey gateway (plain requests only), and for plain requests
 * (g) through the sidecar on the default policy logging every request (debug);
 * (h) through the sidecar on the default policy with the bulkhead's adaptive
 * limit on (breakwater-adaptive; (d) has a fixed limit), for its CPU cost.
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
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { IMAGE_NODE_OPTIONS } from './image-node-options.js';
import { memory, SDK_REQUEST, streamLoad, streamsPlain, vegeta, type Plain, type StreamRun, type Target } from './measures.js';
import { adaptivePolicy, buildBaseline, defaultPolicy, fullPolicy, nginxProxy, start, startBreakwater, stopAll, stopChild, timeToReady, waitFor } from './processes.js';
import { report, type Path, type Round } from './report.js';
import { BASELINE, NODE, ONLY, PORTKEY, RATE, ROOT, ROUNDS, SECONDS, STREAM_COUNTS, STREAMS, UPSTREAM, WARMUP_SECONDS } from './settings.js';
import { sleep } from './util.js';


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
  const [defaults, full, adaptive] = [defaultPolicy(), fullPolicy(), adaptivePolicy()];
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
    // The default policy with the adaptive limit on; `breakwater` above has it off (a fixed limit).
    childPath('breakwater-adaptive', `http://127.0.0.1:18005/openai${chat}`, () => startBreakwater(adaptive, 18005)),
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

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack}\n`);
  stopAll();
  process.exit(1);
});
