/**
 * A self-hosted model server's own queue, read by a real sidecar process
 * from the server's metrics (healthCheck.metricsPath), against fake vLLM
 * servers on 127.0.0.1 that answer /metrics as vLLM's prometheus_client
 * does. While the server reports requests waiting, the endpoint's adaptive
 * limit stops growing and is cut gently (reason server-queue); once its
 * queue is empty, the limit grows again. A metrics path that fails on every
 * read (it hangs, answers garbage or an error carrying a gauge, answers
 * 10 MB with the gauge past what is read) changes nothing: the sidecar
 * serves, the limit grows as it would, each read ends by its deadline and
 * no more than one is open per endpoint, and no descriptor is left behind.
 */
import assert from 'node:assert/strict';
import { createServer, Agent, request, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it, type TestContext } from 'node:test';
import { stringify } from 'yaml';
import { MiB, openFds, rssBytes, sampleRss, settle } from '../support/process-usage.js';
import { spawnSidecar, type SidecarProcess } from '../support/sidecar-process.js';
import { until } from '../support/until.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const WORKERS = 30;

/** vLLM's /metrics (prometheus_client, multiprocess mode), two engines of one model, with `waiting` requests queued on each. */
const vllmMetrics = (waiting: [number, number]) => `# HELP python_gc_objects_collected_total Objects collected during gc
# TYPE python_gc_objects_collected_total counter
python_gc_objects_collected_total{generation="0"} 12741.0
# HELP process_virtual_memory_bytes Virtual memory size in bytes.
# TYPE process_virtual_memory_bytes gauge
process_virtual_memory_bytes 1.2345678848e+010
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="Qwen/Qwen3-0.6B"} 16.0
vllm:num_requests_running{engine="1",model_name="Qwen/Qwen3-0.6B"} 16.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="Qwen/Qwen3-0.6B"} ${waiting[0].toFixed(1)}
vllm:num_requests_waiting{engine="1",model_name="Qwen/Qwen3-0.6B"} ${waiting[1].toFixed(1)}
# HELP vllm:num_requests_waiting_by_reason Number of requests waiting, by the reason they wait.
# TYPE vllm:num_requests_waiting_by_reason gauge
vllm:num_requests_waiting_by_reason{engine="0",model_name="Qwen/Qwen3-0.6B",reason="capacity"} 7.0
# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_sum{engine="0",model_name="Qwen/Qwen3-0.6B"} 211.33847379684448
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.1",model_name="Qwen/Qwen3-0.6B"} 502.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="+Inf",model_name="Qwen/Qwen3-0.6B"} 642.0
vllm:time_to_first_token_seconds_count{engine="0",model_name="Qwen/Qwen3-0.6B"} 642.0
`;

const completion = JSON.stringify({ id: 'c', object: 'chat.completion', model: 'Qwen/Qwen3-0.6B', choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }] });

/** How a fake server's /metrics answers: at most one call in flight is expected; `open` counts those in progress. */
type MetricsAnswer = (res: ServerResponse, call: number) => void;

/**
 * A fake vLLM: /health 200, /metrics as `metrics` says, chat completions after 20 ms. It counts the /metrics
 * reads it holds open at once (the most, and how long each was open).
 */
async function fakeVllm(t: TestContext, metrics: MetricsAnswer) {
  const reads = { calls: 0, open: 0, mostOpen: 0, longestMs: 0, completions: 0 };
  const server = createServer((req, res) => {
    if (req.url === '/health') return void res.writeHead(200).end();
    if (req.url === '/metrics') {
      reads.calls++;
      reads.mostOpen = Math.max(reads.mostOpen, ++reads.open);
      const started = performance.now();
      res.on('close', () => {
        reads.open--;
        reads.longestMs = Math.max(reads.longestMs, performance.now() - started);
      });
      return metrics(res, reads.calls);
    }
    req.resume();
    req.on('end', () => setTimeout(() => (reads.completions++, res.writeHead(200, { 'content-type': 'application/json' }).end(completion)), 20));
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, reads };
}

/** One chat completion through the sidecar: its status. */
const ask = (url: string, agent: Agent) =>
  new Promise<number>((resolve) => {
    const req = request(url, { method: 'POST', agent, headers: { 'content-type': 'application/json' } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', () => resolve(0));
    });
    req.on('error', () => resolve(0));
    req.end(JSON.stringify({ model: 'Qwen/Qwen3-0.6B', messages: [{ role: 'user', content: 'hi' }] }));
  });

/** WORKERS closed-loop requests to each of `urls` until stopped (then their connections are closed); the statuses they got. */
function load(urls: string[]) {
  let stop = false;
  const agent = new Agent({ keepAlive: true, maxSockets: Infinity });
  const statuses = new Map<number, number>();
  const workers = urls.flatMap((url) =>
    Array.from({ length: WORKERS }, async () => {
      while (!stop) {
        const status = await ask(url, agent);
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
      }
    }),
  );
  return {
    statuses,
    async stop() {
      stop = true;
      await Promise.all(workers);
      agent.destroy();
    },
  };
}

interface Status {
  upstreams: { name: string; bulkhead: { maxConcurrent: number }; endpoints: { limit?: number; serverQueue?: number | null }[] }[];
}
const status = async (s: SidecarProcess) => (await (await fetch(`${s.adminUrl}/status`)).json()) as Status;
const endpoint = async (s: SidecarProcess, upstream: string) => (await status(s)).upstreams.find((u) => u.name === upstream)!.endpoints[0]!;
const limitOf = async (s: SidecarProcess, upstream: string) => (await endpoint(s, upstream)).limit!;

/** Every sample of a metric, as `labels value` lines (labels as written). */
async function samples(s: SidecarProcess, name: string): Promise<Map<string, number>> {
  const text = await (await fetch(`${s.adminUrl}/metrics`)).text();
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    out.set(line.slice(name.length, line.lastIndexOf(' ')), Number(line.slice(line.lastIndexOf(' ') + 1)));
  }
  return out;
}
const changes = async (s: SidecarProcess, upstream: string, reason: string) => (await samples(s, 'breakwater_bulkhead_limit_changes_total')).get(`{upstream="${upstream}",reason="${reason}"}`) ?? 0;

/** x cut gently n times: what a limit of x is at least after n gentle cuts (95%, whole numbers). */
const cutGently = (x: number, n: number): number => (n === 0 ? x : cutGently(Math.floor(0.95 * x), n - 1));

const upstream = (name: string, url: string, check: object) => ({
  name,
  url,
  healthCheck: { path: '/health', metricsPath: '/metrics', ...check },
  bulkhead: { adaptive: { min: 4, initial: 20, max: 400 } },
});

describe('a model server\'s own queue and the adaptive limit', () => {
  it('holds the limit and cuts it gently while vLLM reports requests waiting, and lets it grow again once its queue is empty', { timeout: 60_000 }, async (t) => {
    let waiting: [number, number] = [0, 0];
    const vllm = await fakeVllm(t, (res) => res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(vllmMetrics(waiting)));
    const sidecar = await spawnSidecar(t, stringify({ upstreams: [upstream('vllm', vllm.url, { interval: '100ms', timeout: '500ms' })] }));
    const work = load([`${sidecar.dataUrl}/vllm/v1/chat/completions`]);
    t.after(() => work.stop());

    // An empty queue: the limit grows with the load (slow start, up to about twice the requests in flight).
    await until('the server\'s empty queue read', () => endpoint(sidecar, 'vllm'), (e) => e.serverQueue === 0);
    const grown = await until('the limit grows', () => limitOf(sidecar, 'vllm'), (l) => l >= 40, 20_000);
    assert.equal(await changes(sidecar, 'vllm', 'server-queue'), 0);

    // Five requests waiting in the server's queue (3 and 2 on its engines).
    waiting = [3, 2];
    const before = await limitOf(sidecar, 'vllm');
    await until('the first gentle cut', () => changes(sidecar, 'vllm', 'server-queue'), (n) => n >= 1);
    const seen: number[] = [];
    const end = performance.now() + 1500;
    while (performance.now() < end) {
      seen.push(await limitOf(sidecar, 'vllm'));
      await sleep(20);
    }
    const cuts = await changes(sidecar, 'vllm', 'server-queue');
    const low = await limitOf(sidecar, 'vllm');
    t.diagnostic(`grew to ${grown}, ${before} when the queue filled, ${low} after ${cuts} gentle cuts; seen ${seen.join(' ')}`);
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i]! <= seen[i - 1]!, `no growth while the server queues: ${seen[i - 1]} then ${seen[i]}`);
    assert.ok(cuts >= 5, `a cut per reading: ${cuts}`);
    assert.ok(low < before, `cut: ${before} → ${low}`);
    assert.ok(low >= cutGently(before, cuts), `gently, 5% a cut: ${before} cut ${cuts} times is at least ${cutGently(before, cuts)}, not ${low}`);
    assert.equal(await changes(sidecar, 'vllm', 'overload'), 0, 'the server never refused');
    assert.equal((await samples(sidecar, 'breakwater_upstream_server_queue')).get('{upstream="vllm",endpoint="0"}'), 5);
    assert.equal((await endpoint(sidecar, 'vllm')).serverQueue, 5);

    // The queue drains: growth resumes once the last reading's hold is over.
    waiting = [0, 0];
    const regrown = await until('the limit grows again', () => limitOf(sidecar, 'vllm'), (l) => l > low + 2, 20_000);
    const cutsAfter = await changes(sidecar, 'vllm', 'server-queue');
    assert.ok(cutsAfter <= cuts + 2, `no more cuts once the queue is empty (${cuts}, then ${cutsAfter}: readings in flight when it emptied)`);
    assert.equal((await samples(sidecar, 'breakwater_upstream_server_queue')).get('{upstream="vllm",endpoint="0"}'), 0);
    await work.stop();
    t.diagnostic(`grew again to ${regrown}; ${vllm.reads.calls} metrics reads, ${vllm.reads.completions} completions; statuses ${JSON.stringify([...work.statuses])}`);
    assert.deepEqual([...work.statuses.keys()], [200], 'every request served');
    assert.equal(vllm.reads.mostOpen, 1, 'one read in flight at most');
  });

  it('changes nothing when the metrics path fails on every read: it hangs, answers garbage, or 10 MB', { timeout: 60_000 }, async (t) => {
    const gauge = 'vllm:num_requests_waiting{engine="0",model_name="Qwen/Qwen3-0.6B"} 9.0\n';
    const garbage: [number, string | Buffer][] = [
      [200, Buffer.from(Array.from({ length: 8192 }, (_, i) => (i * 7919 + 13) % 256))],
      [200, `vllm:num_requests_waiting{engine="0",model_name="Qwen/Qwen3-0.6B 9.0\n`], // a label set that never closes
      [200, 'vllm:num_requests_waiting{engine="0"} NaN\nvllm:num_requests_waiting{engine="1"} +Inf\n'],
      [500, gauge], // an error answer's body is not a reading
      [200, '<html><body><h1>502 Bad Gateway</h1></body></html>'],
    ];
    const filler = Buffer.from('vllm:time_to_first_token_seconds_bucket{engine="0",le="0.1",model_name="Qwen/Qwen3-0.6B"} 502.0\n'.repeat(1000));
    const hung = await fakeVllm(t, () => {}); // never answers
    const noisy = await fakeVllm(t, (res, call) => {
      const [code, body] = garbage[call % garbage.length]!;
      res.writeHead(code, { 'content-type': 'text/plain' }).end(body);
    });
    const huge = await fakeVllm(t, (res) => {
      // 10 MB of histograms, as the socket takes them, then the gauge: past the 1 MiB the sidecar reads.
      let written = 0;
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
      const pour = () => {
        while (written < 10 * MiB && !res.destroyed) {
          written += filler.length;
          if (!res.write(filler)) return void res.once('drain', pour);
        }
        if (!res.destroyed) res.end(gauge);
      };
      pour();
    });
    const check = { interval: '50ms', timeout: '200ms' };
    const sidecar = await spawnSidecar(t, stringify({ upstreams: [upstream('hung', hung.url, check), upstream('noisy', noisy.url, check), upstream('huge', huge.url, check)] }));
    const pid = sidecar.child.pid!;
    await sleep(500); // the first reads and connections made
    const baseFds = openFds(pid);
    const baseRss = rssBytes(pid);
    const rss = sampleRss(pid);
    const names = ['hung', 'noisy', 'huge'];
    const work = load(names.map((n) => `${sidecar.dataUrl}/${n}/v1/chat/completions`));
    t.after(() => work.stop());
    for (const name of names) await until(`${name}'s limit grows as it would`, () => limitOf(sidecar, name), (l) => l >= 40, 20_000);
    await sleep(2000); // more failed reads, under load
    await work.stop();
    const peak = rss.stop();

    const st = await status(sidecar);
    for (const name of names) {
      assert.equal(await changes(sidecar, name, 'server-queue'), 0, `${name}: no reading, no cut`);
      assert.equal(st.upstreams.find((u) => u.name === name)!.endpoints[0]!.serverQueue, null, `${name}: unknown in /status`);
    }
    assert.deepEqual([...(await samples(sidecar, 'breakwater_upstream_server_queue')).keys()], [], 'no gauge series for an unknown queue');
    assert.deepEqual([...work.statuses.keys()], [200], `every request served: ${JSON.stringify([...work.statuses])}`);
    t.diagnostic(`reads: hung ${hung.reads.calls} (longest ${hung.reads.longestMs.toFixed(0)} ms), noisy ${noisy.reads.calls}, huge ${huge.reads.calls} (longest ${huge.reads.longestMs.toFixed(0)} ms); RSS ${Math.round(baseRss / MiB)} MiB, peak ${Math.round(peak / MiB)} MiB`);
    for (const server of [hung, noisy, huge]) assert.equal(server.reads.mostOpen, 1, 'one read in flight at most');
    assert.ok(hung.reads.calls >= 8, `the hung path was read again after each timeout: ${hung.reads.calls}`);
    assert.ok(hung.reads.longestMs < 1000, `each hung read ended by its deadline: longest ${hung.reads.longestMs.toFixed(0)} ms`);
    assert.ok(huge.reads.calls >= 8, `huge answers read again and again: ${huge.reads.calls}`);
    assert.ok(noisy.reads.calls >= 20, `garbage read again and again: ${noisy.reads.calls}`);
    assert.ok(peak - baseRss <= 96 * MiB, `RSS grew by ${Math.round((peak - baseRss) / MiB)} MiB`);
    // The app's connections are closed; the sidecar's idle ones to the servers close after 4 s.
    const fds = await settle(() => openFds(pid), (n) => n <= baseFds + 4, 10_000);
    assert.ok(fds <= baseFds + 4, `${fds} fds open, ${baseFds} before the load`);
  });
});
