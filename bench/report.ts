/** The figures of a bench run: medians of its rounds, ratios to the floor, written to bench/results/, docs/performance.md and the README's summary. */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { IMAGE_NODE_OPTIONS } from './image-node-options.js';
import type { Memory, Plain, StreamRun } from './measures.js';
import { CONNECTIONS, NODE, RATE, ROOT, ROUNDS, SECONDS, STREAM_COUNTS, WARMUP_SECONDS } from './settings.js';
import { median } from './util.js';

/** A path under test: how to start a fresh process for it, and which process its costs are read from. */
export interface Path {
  name: string;
  url: string;
  headers: Record<string, string>;
  streams: boolean;
  /** Starts the path's process; returns the pid its CPU and memory are read from, and how to stop it. */
  start(): Promise<{ pid: number; stop(): Promise<void> }>;
}

/** One target's figures in one round (its own fresh process). */
export interface Round {
  idle: Memory;
  vegeta: Plain;
  streamsPlain: Plain;
  bursts: Plain;
  /** Memory after the plain requests. */
  afterPlain: Memory;
  streams: StreamRun[];
}

/** The figures of each path: the median of its rounds, each figure on its own. */
export interface Summary {
  idle: Memory;
  afterPlain: Memory;
  vegeta: Plain;
  streamsPlain: Plain;
  bursts: Plain;
  streams: (StreamRun & { rounds: number[] })[];
}

export function summarize(list: Round[]): Summary {
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

export function report(paths: Path[], rounds: Record<string, Round[]>, readyMs: number): void {
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
  writeBetween('docs/performance.md', 'bench:results', md);
  writeBetween('README.md', 'bench:summary', readmeSummary(summary));
  process.stdout.write(`\n${md}`);
}

/** What the README says of the latest run: the sidecar's ratios to the floor, from bench/results/latest.json's `vsFloor`. */
export function readmeSummary(summary: { date: string; vsFloor: Record<string, { cpuPerRequest: Record<'vegeta' | 'streamsPlain' | 'bursts', number>; addedCpuMicros: Record<'vegeta' | 'streamsPlain' | 'bursts', number>; streams: { streams: number; cpuPerEvent: number; perStreamKiB: number }[] }> }): string {
  const x = (v: number) => `${v.toFixed(2)}×`;
  const line = (name: string, label: string) => {
    const r = summary.vsFloor[name];
    if (!r) return [];
    const at500 = r.streams.find((s) => s.streams === 500);
    const streams = at500 ? `; per stream event at 500 streams ${x(at500.cpuPerEvent)}, memory per open stream ${x(at500.perStreamKiB)}` : '';
    const c = r.cpuPerRequest;
    const added = Object.values(r.addedCpuMicros);
    return [`- ${label}: CPU per plain request ${x(c.vegeta)} (vegeta), ${x(c.streamsPlain)} (streams plain), ${x(c.bursts)} (bursts), ${Math.min(...added).toFixed(0)}–${Math.max(...added).toFixed(0)} µs added${streams}.`];
  };
  return [`The latest run (${summary.date.slice(0, 10)}, \`bench/results/latest.md\`), as ratios to the floor's cost in the same run:`, ...line('breakwater', 'the default policy'), ...line('breakwater-full', 'the full example policy')].join('\n');
}

/** A file shows the latest results between its `<!-- name -->` markers: the run rewrites them, nobody edits them by hand. */
export function writeBetween(path: string, name: string, md: string): void {
  const file = join(ROOT, path);
  const [start, end] = [`<!-- ${name} -->`, `<!-- /${name} -->`];
  const doc = readFileSync(file, 'utf8');
  const from = doc.indexOf(start);
  const to = doc.indexOf(end);
  if (from < 0 || to < from) throw new Error(`${file} has no ${start} … ${end} section for the results`);
  writeFileSync(file, `${doc.slice(0, from + start.length)}\n${md}\n${doc.slice(to)}`);
}
