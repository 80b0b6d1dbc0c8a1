/**
 * What a bench run measures of a process (CPU time and memory, from /proc) and how it loads it: plain
 * requests by vegeta and by `streams plain`, streams by `streams load`.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CONNECTIONS, RATE, STREAMS, VEGETA } from './settings.js';
import { run, sleep, work } from './util.js';

export interface Target {
  name: string;
  url: string;
  headers: Record<string, string>;
  /** The process whose CPU and memory the path costs (the model server itself for direct). */
  pid: number;
  /** Relays streams too (Portkey is measured on plain requests only). */
  streams: boolean;
}

export interface Memory {
  /** Resident set, MiB. */
  rss: number;
  /** Its anonymous part (heap, buffers), without mapped files such as the node binary, MiB. */
  anon: number;
}

export function memory(pid: number): Memory {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)![1]) / 1024;
  return { rss: kib('VmRSS'), anon: kib('RssAnon') };
}

/** The highest memory a process reaches while `during` runs, sampled every 50 ms. */
export async function peakMemory<T>(pid: number, during: Promise<T>): Promise<{ peak: Memory; result: T }> {
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
export function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
}


export interface Plain {
  p50: number;
  p99: number;
  errors: number;
  /** CPU time the path's process spent per request, µs. */
  cpuMicros: number;
}

/** The request both harnesses send: `streams request`'s chat request (~1.5 KB) and the openai SDK's headers. */
export const SDK_REQUEST = JSON.parse(spawnSync(STREAMS, ['request'], { encoding: 'utf8' }).stdout || '{}') as { body: string; headers: Record<string, string> };

/** Harness 1: vegeta, open loop at RATE, requests evenly spaced, its own keep-alive connections. */
export async function vegeta(target: Target, seconds: number): Promise<Plain> {
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
export async function streamsPlain(target: Target, seconds: number, burst = 1): Promise<Plain> {
  const cpuBefore = cpuSeconds(target.pid);
  const headerArgs = Object.entries(target.headers).flatMap(([k, v]) => ['-header', `${k}:${v}`]);
  const out = await run(STREAMS, ['plain', '-url', target.url, '-rate', String(RATE), '-connections', String(CONNECTIONS), '-duration', `${seconds}s`, '-burst', String(burst), ...headerArgs]);
  const r = JSON.parse(out.toString()) as { requests: number; errors: number; p50Ms: number; p99Ms: number; firstError?: string };
  if (r.firstError) process.stderr.write(`${target.name}: ${r.firstError}\n`);
  return { p50: r.p50Ms, p99: r.p99Ms, errors: r.errors, cpuMicros: ((cpuSeconds(target.pid) - cpuBefore) * 1e6) / r.requests };
}

export interface StreamRun {
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

export async function streamLoad(target: Target, streams: number): Promise<StreamRun> {
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

