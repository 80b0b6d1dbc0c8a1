/**
 * Hedging benchmark (not a test): a model server whose first token takes 2 s
 * on 10% of requests (at random, hedges included) and comes at once
 * otherwise, behind one sidecar with two upstreams to it: `plain` (no hedge)
 * and `hedged` (hedge.delay 300ms). The same streaming load goes to each in
 * turn, and the client measures time to first token. Writes
 * bench/results/hedging.{json,md}. Run with `npm run bench:hedging`
 * (REQUESTS=500, CONCURRENCY=20 by default). Loopback only.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { stringify } from 'yaml';
import { loadPolicyText } from '../sidecar/config/policy-file.js';
import { MockUpstream } from '../sidecar/mock-upstream/mock-upstream.js';
import { startSidecar } from '../sidecar/sidecar.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const REQUESTS = Number(process.env.REQUESTS ?? 500);
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 20);
const SLOW_PERCENT = 10;
const SLOW_MS = 2000;
const HEDGE_DELAY = '300ms';

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;

async function firstTokenMs(url: string): Promise<number> {
  const started = performance.now();
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'm', stream: true, messages: [{ role: 'user', content: 'hi' }] }),
  });
  const reader = response.body!.getReader();
  const first = await reader.read();
  const ms = performance.now() - started;
  if (response.status !== 200 || first.done) throw new Error(`status ${response.status}`);
  while (!(await reader.read()).done);
  return ms;
}

async function load(url: string): Promise<number[]> {
  const times: number[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next++ < REQUESTS) times.push(await firstTokenMs(url));
    }),
  );
  return times.sort((a, b) => a - b);
}

const mock = await MockUpstream.start({ failPercent: SLOW_PERCENT, failure: { kind: 'ok', delayMs: SLOW_MS, chunks: 3 } });
const loaded = loadPolicyText(stringify({ upstreams: [{ name: 'plain', url: mock.url }, { name: 'hedged', url: mock.url, hedge: { delay: HEDGE_DELAY } }] }), 'bench');
if (!loaded.ok) throw new Error(loaded.error);
const sidecar = await startSidecar({ config: loaded.config, listen: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 }, log: pino({ level: 'silent' }) });
const rows: Record<string, { p50: number; p90: number; p99: number; max: number; upstreamRequests: number }> = {};
for (const name of ['plain', 'hedged']) {
  const before = mock.requests.length;
  const times = await load(`${sidecar.dataUrl}/${name}/v1/chat/completions`);
  rows[name] = { p50: percentile(times, 50), p90: percentile(times, 90), p99: percentile(times, 99), max: times.at(-1)!, upstreamRequests: mock.requests.length - before };
}
const metrics = await (await fetch(`${sidecar.adminUrl}/metrics`)).text();
const hedges = Object.fromEntries([...metrics.matchAll(/^breakwater_hedges_total\{upstream="hedged",result="(\w+)"\} (\d+)/gm)].map((m) => [m[1]!, Number(m[2])]));
await sidecar.drain();
await mock.close();

const ratio = rows.plain!.p99 / rows.hedged!.p99;
const result = { requests: REQUESTS, concurrency: CONCURRENCY, slowPercent: SLOW_PERCENT, slowMs: SLOW_MS, hedgeDelay: HEDGE_DELAY, rows, hedges, p99Ratio: ratio };
writeFileSync(join(ROOT, 'bench/results/hedging.json'), `${JSON.stringify(result, null, 2)}\n`);
const ms = (v: number) => v.toFixed(0);
const md = `# Hedging: time to first token

${REQUESTS} streaming requests per row, ${CONCURRENCY} at a time, through one sidecar to a model server whose first token takes ${SLOW_MS} ms on ${SLOW_PERCENT}% of requests at random (hedges included). \`npm run bench:hedging\`.

| upstream | p50 ms | p90 ms | p99 ms | max ms | requests the server saw |
|---|---|---|---|---|---|
${Object.entries(rows)
  .map(([name, r]) => `| ${name === 'hedged' ? `hedged (delay ${HEDGE_DELAY})` : name} | ${ms(r.p50)} | ${ms(r.p90)} | ${ms(r.p99)} | ${ms(r.max)} | ${r.upstreamRequests} |`)
  .join('\n')}

p99 time to first token: **${ratio.toFixed(1)}× lower** with hedging. Hedges: ${Object.entries(hedges).map(([k, v]) => `${v} ${k}`).join(', ') || 'none'} (the retry budget allows 20% of requests plus 5 a second).
`;
writeFileSync(join(ROOT, 'bench/results/hedging.md'), md);
process.stdout.write(md);
