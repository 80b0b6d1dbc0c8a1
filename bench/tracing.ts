/**
 * What tracing costs the sidecar: CPU per request (the sidecar process's
 * utime + stime from /proc, over a fixed number of requests) and resident
 * memory, with tracing off (the SDK not loaded), and on with each OTLP
 * exporter (HTTP/protobuf, gRPC, HTTP/JSON) into a real Jaeger, and on but
 * sampling no new trace, and on with the collector gone (Jaeger stopped: its
 * spans dropped and counted). Plain requests, 16 at a time, to a model server
 * on 127.0.0.1, in rounds that alternate the modes (a fresh sidecar each),
 * each figure the median of its rounds. `npm run bench:tracing`
 * (BENCH_MODES=off;... for some of them, BENCH_REQUESTS for how many per
 * round, BENCH_ROUNDS); writes its section of bench/results/tracing.md.
 */
import { readFileSync } from 'node:fs';
import type { TestContext } from 'node:test';
import { stringify } from 'yaml';
import { startJaeger } from '../test/support/jaeger.js';
import { startModelUpstream } from '../test/support/model-upstream.js';
import { rssBytes, MiB } from '../test/support/process-usage.js';
import { spawnSidecar } from '../test/support/sidecar-process.js';
import { writeBetween } from './report.js';

const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 10_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONCURRENCY = 16;
const cleanups: (() => unknown)[] = [];
const t = { after: (fn: () => unknown) => cleanups.push(fn), diagnostic: () => {} } as unknown as TestContext;

const cpuMs = (pid: number) => {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime, stime in clock ticks (100/s)
};

async function load(url: string, n: number): Promise<number[]> {
  const body = JSON.stringify({ model: 'gpt-test', messages: [{ role: 'user', content: 'hi' }] });
  const latencies: number[] = [];
  let next = 0;
  const worker = async () => {
    while (next++ < n) {
      const started = performance.now();
      const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      await res.arrayBuffer();
      latencies.push(performance.now() - started);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return latencies.sort((a, b) => a - b);
}

interface Mode {
  name: string;
  tracing: object;
  env: Record<string, string>;
}

async function main(): Promise<void> {
  const jaeger = await startJaeger(t);
  const upstream = await startModelUpstream(t, { tokens: ['hello ', 'world'] });
  const modes: Mode[] = [
    { name: 'off', tracing: { enabled: false }, env: {} },
    { name: 'on, http/protobuf', tracing: { enabled: true }, env: { OTEL_EXPORTER_OTLP_ENDPOINT: jaeger.otlpHttp } },
    { name: 'on, grpc', tracing: { enabled: true }, env: { OTEL_EXPORTER_OTLP_ENDPOINT: jaeger.otlpGrpc, OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' } },
    { name: 'on, http/json', tracing: { enabled: true }, env: { OTEL_EXPORTER_OTLP_ENDPOINT: jaeger.otlpHttp, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' } },
    { name: 'on, sampling 0%', tracing: { enabled: true, sampling: '0' }, env: { OTEL_EXPORTER_OTLP_ENDPOINT: jaeger.otlpHttp } },
    // Jaeger stopped: nothing listens where the spans go (port 9 is never served here).
    { name: 'on, Jaeger stopped', tracing: { enabled: true }, env: { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9' } },
  ];
  const only = process.env.BENCH_MODES?.split(';');
  const chosen = modes.filter((m) => !only || only.includes(m.name));
  const figures = new Map(chosen.map((m) => [m, [] as Figures[]]));
  for (let round = 1; round <= ROUNDS; round++) {
    for (const mode of chosen) {
      const f = await measure(mode, upstream.url);
      console.log(`round ${round}: ${mode.name}: ${JSON.stringify(f)}`);
      figures.get(mode)!.push(f);
    }
  }
  const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const rows = chosen.map((mode) => {
    const fs = figures.get(mode)!;
    const p99s = fs.map((f) => f.p99).sort((a, b) => a - b);
    return `| ${mode.name} | ${median(fs.map((f) => f.cpuUs)).toFixed(0)} | ${median(fs.map((f) => f.p50)).toFixed(2)} | ${median(fs.map((f) => f.p99)).toFixed(2)} (${p99s[0]!.toFixed(1)}–${p99s.at(-1)!.toFixed(1)}) | ${median(fs.map((f) => f.majorGcs)).toFixed(0)} | ${median(fs.map((f) => f.gcMs)).toFixed(0)} | ${median(fs.map((f) => f.rssMiB)).toFixed(0)} | ${fs.reduce((n, f) => n + f.dropped, 0)} |`;
  });
  const table = ['| tracing | CPU µs per request | p50 ms | p99 ms (rounds\' range) | major GCs | GC ms | RSS MiB | spans dropped (all rounds) |', '|---|---|---|---|---|---|---|---|', ...rows].join('\n');
  console.log(table);
  writeBetween(
    'bench/results/tracing.md',
    'bench:tracing',
    `${REQUESTS} plain requests, ${CONCURRENCY} at a time, after 1000 to warm up, per mode and round; ${ROUNDS} rounds alternating the modes, a fresh sidecar each; medians of the rounds (\`npm run bench:tracing\`, bench/tracing.ts; BENCH_MODES=name;name for some of the modes, BENCH_REQUESTS, BENCH_ROUNDS):\n\n${table}`,
  );
}

interface Figures {
  cpuUs: number;
  p50: number;
  p99: number;
  rssMiB: number;
  dropped: number;
  /** Major collections (mark-compact) during the measured requests, and time in all collections. */
  majorGcs: number;
  gcMs: number;
}

/** The sidecar's garbage collections so far, from prom-client's process metrics: major ones counted, all timed. */
function gcOf(metrics: string): { majorCount: number; ms: number } {
  let majorCount = 0;
  let ms = 0;
  for (const line of metrics.split('\n')) {
    if (!line.startsWith('breakwater_process_nodejs_gc_duration_seconds_')) continue;
    const value = Number(line.split(' ').at(-1));
    if (line.startsWith('breakwater_process_nodejs_gc_duration_seconds_sum{')) ms += value * 1000;
    else if (line.startsWith('breakwater_process_nodejs_gc_duration_seconds_count{kind="major"')) majorCount += value;
  }
  return { majorCount, ms };
}

/** One round of one mode: a fresh sidecar, warmed, then REQUESTS requests. */
async function measure(mode: Mode, upstreamUrl: string): Promise<Figures> {
  const sidecar = await spawnSidecar(t, stringify({ tracing: mode.tracing, upstreams: [{ name: 'primary', url: upstreamUrl }] }), { ...mode.env, OTEL_BSP_SCHEDULE_DELAY: '200' });
  const pid = sidecar.child.pid!;
  const url = `${sidecar.dataUrl}/primary/v1/chat/completions`;
  await load(url, 1000); // warm: the SDK loaded, the JIT settled
  const gcBefore = gcOf(await (await fetch(`${sidecar.adminUrl}/metrics`)).text());
  const before = cpuMs(pid);
  const latencies = await load(url, REQUESTS);
  await new Promise((r) => setTimeout(r, 500)); // the last batches exported
  const cpu = cpuMs(pid) - before;
  const metrics = await (await fetch(`${sidecar.adminUrl}/metrics`)).text();
  const gc = gcOf(metrics);
  const dropped = metrics.split('\n').filter((l) => l.startsWith('breakwater_trace_spans_dropped_total')).reduce((n, l) => n + Number(l.split(' ').at(-1)), 0);
  const figures = {
    cpuUs: (cpu * 1000) / REQUESTS,
    p50: latencies[Math.floor(latencies.length / 2)]!,
    p99: latencies[Math.floor(latencies.length * 0.99)]!,
    rssMiB: rssBytes(pid) / MiB,
    dropped,
    majorGcs: gc.majorCount - gcBefore.majorCount,
    gcMs: gc.ms - gcBefore.ms,
  };
  sidecar.child.kill('SIGKILL');
  await sidecar.exited;
  return figures;
}

main()
  .catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  })
  .finally(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });
