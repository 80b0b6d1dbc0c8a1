/**
 * Reading a model server's own queue from its Prometheus metrics: the pure
 * parse against each server's exposition as it writes it (vLLM and SGLang
 * through prometheus_client, TGI through metrics-exporter-prometheus,
 * llama.cpp's own stringstream), property-tested (never throws, the same
 * answer however the text is split, only the exact gauge names count,
 * linear work); and the probe's I/O against a real HTTP server on
 * 127.0.0.1 (no credentials, a cap on what it reads, an abort, non-2xx);
 * and healthCheck.metricsPath in a policy.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it, type TestContext } from 'node:test';
import fc from 'fast-check';
import { validatePolicy } from '../../api/index.js';
import { compileConfig } from '../../sidecar/config/compile-config.js';
import { MAX_LINE_CHARS, parseServerQueue, QUEUE_GAUGES, QueueGaugeReader, serverQueueProbe } from '../../sidecar/proxy/upstream/server-queue-probe.js';
import { UpstreamClient } from '../../sidecar/proxy/upstream/upstream-client.js';
import { until } from '../support/until.js';

/**
 * vLLM (V1 engine, data-parallel 2, one model), as prometheus_client writes it in multiprocess mode (labels sorted):
 * the Python runtime's metrics first (floats as repr, large ones in Go's exponent form, 1.2345678848e+010), the HTTP
 * instrumentator's, then vLLM's: `vllm:num_requests_waiting` one series per engine, the newer
 * `vllm:num_requests_waiting_by_reason` (which must not count), counters with their `_created`, histograms with +Inf.
 */
const VLLM = `# HELP python_gc_objects_collected_total Objects collected during gc
# TYPE python_gc_objects_collected_total counter
python_gc_objects_collected_total{generation="0"} 12741.0
python_gc_objects_collected_total{generation="1"} 2671.0
python_gc_objects_collected_total{generation="2"} 597.0
# HELP python_gc_objects_uncollectable_total Uncollectable objects found during GC
# TYPE python_gc_objects_uncollectable_total counter
python_gc_objects_uncollectable_total{generation="0"} 0.0
python_gc_objects_uncollectable_total{generation="1"} 0.0
python_gc_objects_uncollectable_total{generation="2"} 0.0
# HELP python_info Python platform information
# TYPE python_info gauge
python_info{implementation="CPython",major="3",minor="12",patchlevel="11",version="3.12.11"} 1.0
# HELP process_virtual_memory_bytes Virtual memory size in bytes.
# TYPE process_virtual_memory_bytes gauge
process_virtual_memory_bytes 1.2345678848e+010
# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.
# TYPE process_start_time_seconds gauge
process_start_time_seconds 1.75998743291e+09
# HELP http_requests_total Total number of requests by method, status and handler.
# TYPE http_requests_total counter
http_requests_total{handler="/v1/chat/completions",method="POST",status="2xx"} 1284.0
http_requests_total{handler="/metrics",method="GET",status="2xx"} 311.0
# HELP http_requests_created Total number of requests by method, status and handler.
# TYPE http_requests_created gauge
http_requests_created{handler="/v1/chat/completions",method="POST",status="2xx"} 1.7599874521362014e+09
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="Qwen/Qwen3-0.6B"} 8.0
vllm:num_requests_running{engine="1",model_name="Qwen/Qwen3-0.6B"} 8.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="Qwen/Qwen3-0.6B"} 3.0
vllm:num_requests_waiting{engine="1",model_name="Qwen/Qwen3-0.6B"} 2.0
# HELP vllm:num_requests_waiting_by_reason Number of requests waiting, by the reason they wait.
# TYPE vllm:num_requests_waiting_by_reason gauge
vllm:num_requests_waiting_by_reason{engine="0",model_name="Qwen/Qwen3-0.6B",reason="capacity"} 3.0
vllm:num_requests_waiting_by_reason{engine="0",model_name="Qwen/Qwen3-0.6B",reason="deferred"} 0.0
vllm:num_requests_waiting_by_reason{engine="1",model_name="Qwen/Qwen3-0.6B",reason="capacity"} 2.0
vllm:num_requests_waiting_by_reason{engine="1",model_name="Qwen/Qwen3-0.6B",reason="deferred"} 0.0
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="Qwen/Qwen3-0.6B"} 0.9981684981684982
vllm:kv_cache_usage_perc{engine="1",model_name="Qwen/Qwen3-0.6B"} 0.9963369963369964
# HELP vllm:prompt_tokens_total Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{engine="0",model_name="Qwen/Qwen3-0.6B"} 5.052943e+06
vllm:prompt_tokens_total{engine="1",model_name="Qwen/Qwen3-0.6B"} 4.981221e+06
# HELP vllm:prompt_tokens_created Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_created gauge
vllm:prompt_tokens_created{engine="0",model_name="Qwen/Qwen3-0.6B"} 1.7599874378906236e+09
vllm:prompt_tokens_created{engine="1",model_name="Qwen/Qwen3-0.6B"} 1.7599874379012375e+09
# HELP vllm:lora_requests_info Running stats on lora requests.
# TYPE vllm:lora_requests_info gauge
vllm:lora_requests_info{max_lora="0",running_lora_adapters="",waiting_lora_adapters=""} 1.7599875112398e+09
# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_sum{engine="0",model_name="Qwen/Qwen3-0.6B"} 211.33847379684448
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.001",model_name="Qwen/Qwen3-0.6B"} 0.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.005",model_name="Qwen/Qwen3-0.6B"} 0.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.01",model_name="Qwen/Qwen3-0.6B"} 0.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.02",model_name="Qwen/Qwen3-0.6B"} 3.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.04",model_name="Qwen/Qwen3-0.6B"} 97.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.06",model_name="Qwen/Qwen3-0.6B"} 298.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.08",model_name="Qwen/Qwen3-0.6B"} 411.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.1",model_name="Qwen/Qwen3-0.6B"} 502.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.25",model_name="Qwen/Qwen3-0.6B"} 601.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.5",model_name="Qwen/Qwen3-0.6B"} 640.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="1.0",model_name="Qwen/Qwen3-0.6B"} 642.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="2560.0",model_name="Qwen/Qwen3-0.6B"} 642.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="+Inf",model_name="Qwen/Qwen3-0.6B"} 642.0
vllm:time_to_first_token_seconds_count{engine="0",model_name="Qwen/Qwen3-0.6B"} 642.0
# HELP vllm:time_to_first_token_seconds_created Histogram of time to first token in seconds.
# TYPE vllm:time_to_first_token_seconds_created gauge
vllm:time_to_first_token_seconds_created{engine="0",model_name="Qwen/Qwen3-0.6B"} 1.7599874379123e+09
`;

/** SGLang, prometheus_client in multiprocess mode: one series per scheduler; the grammar queue is another gauge. */
const SGLANG = `# HELP sglang:num_running_reqs The number of running requests.
# TYPE sglang:num_running_reqs gauge
sglang:num_running_reqs{engine_type="unified",model_name="meta-llama/Llama-3.1-8B-Instruct",pp_rank="0",tp_rank="0"} 48.0
# HELP sglang:num_queue_reqs The number of requests in the waiting queue.
# TYPE sglang:num_queue_reqs gauge
sglang:num_queue_reqs{engine_type="unified",model_name="meta-llama/Llama-3.1-8B-Instruct",pp_rank="0",tp_rank="0"} 7.0
# HELP sglang:num_grammar_queue_reqs The number of requests in the grammar waiting queue.
# TYPE sglang:num_grammar_queue_reqs gauge
sglang:num_grammar_queue_reqs{engine_type="unified",model_name="meta-llama/Llama-3.1-8B-Instruct",pp_rank="0",tp_rank="0"} 1.0
# HELP sglang:token_usage The token usage.
# TYPE sglang:token_usage gauge
sglang:token_usage{engine_type="unified",model_name="meta-llama/Llama-3.1-8B-Instruct",pp_rank="0",tp_rank="0"} 0.28
# HELP sglang:prompt_tokens_total Number of prefill tokens processed.
# TYPE sglang:prompt_tokens_total counter
sglang:prompt_tokens_total{engine_type="unified",model_name="meta-llama/Llama-3.1-8B-Instruct",pp_rank="0",tp_rank="0"} 8.128902e+06
`;

/** llama.cpp's server started with --metrics: HELP, TYPE and one unlabelled line each, doubles as a C++ stream writes them. */
const LLAMACPP = `# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed, excluding cached tokens
# TYPE llamacpp:prompt_tokens_total counter
llamacpp:prompt_tokens_total 1.23457e+06
# HELP llamacpp:prompt_tokens_cached_total Number of prompt tokens reused from the cache
# TYPE llamacpp:prompt_tokens_cached_total counter
llamacpp:prompt_tokens_cached_total 48213
# HELP llamacpp:prompt_seconds_total Total time spent processing prompts
# TYPE llamacpp:prompt_seconds_total counter
llamacpp:prompt_seconds_total 2903.63
# HELP llamacpp:tokens_predicted_total Number of generation tokens processed
# TYPE llamacpp:tokens_predicted_total counter
llamacpp:tokens_predicted_total 3469
# HELP llamacpp:n_decode_total Total number of llama_decode() calls, excluding speculative decoding and multimodal decoding
# TYPE llamacpp:n_decode_total counter
llamacpp:n_decode_total 3470
# HELP llamacpp:prompt_tokens_seconds Average prompt throughput in tokens/s
# TYPE llamacpp:prompt_tokens_seconds gauge
llamacpp:prompt_tokens_seconds 2.37151
# HELP llamacpp:predicted_tokens_seconds Average generation throughput in tokens/s
# TYPE llamacpp:predicted_tokens_seconds gauge
llamacpp:predicted_tokens_seconds 0.978691
# HELP llamacpp:requests_processing Number of requests processing
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing 4
# HELP llamacpp:requests_deferred Number of requests deferred
# TYPE llamacpp:requests_deferred gauge
llamacpp:requests_deferred 2
# HELP llamacpp:n_busy_slots_per_decode Average number of busy slots per llama_decode() call
# TYPE llamacpp:n_busy_slots_per_decode gauge
llamacpp:n_busy_slots_per_decode 3.98415
`;

/** TGI's router (metrics-exporter-prometheus: Rust's f64 Display, summaries with quantiles), an empty queue. */
const TGI = `# HELP tgi_request_count Total number of requests
# TYPE tgi_request_count counter
tgi_request_count 4721

# HELP tgi_batch_current_size Current batch size
# TYPE tgi_batch_current_size gauge
tgi_batch_current_size 12

# HELP tgi_queue_size Current queue size
# TYPE tgi_queue_size gauge
tgi_queue_size 0

# HELP tgi_batch_forward_duration Batch forward duration in seconds
# TYPE tgi_batch_forward_duration summary
tgi_batch_forward_duration{method="decode",quantile="0"} 0.018023291
tgi_batch_forward_duration{method="decode",quantile="0.5"} 0.020116539519563633
tgi_batch_forward_duration{method="decode",quantile="1"} 0.061529043
tgi_batch_forward_duration_sum{method="decode"} 412.5109283390002
tgi_batch_forward_duration_count{method="decode"} 20116

# HELP tgi_request_duration Total time per request in seconds
# TYPE tgi_request_duration histogram
tgi_request_duration_bucket{le="0.5"} 100
tgi_request_duration_bucket{le="1"} 350
tgi_request_duration_bucket{le="+Inf"} 4721
tgi_request_duration_sum 9823.118
tgi_request_duration_count 4721
`;

/**
 * The exposition format's corners, around queue gauges (as a proxy or an older exporter may write them): escaped
 * quotes, backslashes and newlines in label values, a } inside one, blanks and tabs, a timestamp, NaN and +Inf
 * samples (not counts), exponents, comments that are neither HELP nor TYPE, blank lines.
 */
const CORNERS = [
  '# a comment that is neither HELP nor TYPE: vllm:num_requests_waiting 1000',
  '',
  'vllm:num_requests_waiting{model_name="say \\"hi\\"",engine="0"} 1e+00',
  'vllm:num_requests_waiting{model_name="a\\\\b}c\\nd",engine="1"} 2.5E0 1700000000000',
  '  vllm:num_requests_waiting\t{engine="2",model_name="x"}\t1.0',
  'vllm:num_requests_waiting{engine="3",model_name="nan"} NaN',
  'vllm:num_requests_waiting{engine="4",model_name="inf"} +Inf',
  'vllm:num_requests_waiting{engine="5",model_name="neg"} -1',
  'vllm:num_requests_waiting{engine="6",model_name="hex"} 0x10',
  'tgi_queue_size 5e-1',
  '\t',
  '# EOF',
].join('\n');

describe('parseServerQueue on what model servers write', () => {
  it('sums vLLM\'s waiting requests over its engines, and nothing of waiting_by_reason', () => {
    assert.equal(parseServerQueue(VLLM), 5);
  });

  it('reads SGLang\'s queue (not its grammar queue), llama.cpp\'s deferred requests, and TGI\'s empty queue as 0', () => {
    assert.equal(parseServerQueue(SGLANG), 7);
    assert.equal(parseServerQueue(LLAMACPP), 2);
    assert.equal(parseServerQueue(TGI), 0, 'an empty queue is a reading, not unknown');
  });

  it('reads CRLF lines, and a last line without its newline', () => {
    assert.equal(parseServerQueue(VLLM.replaceAll('\n', '\r\n')), 5);
    assert.equal(parseServerQueue(LLAMACPP.trimEnd()), 2);
    assert.equal(parseServerQueue('llamacpp:requests_deferred 3\r'), 3);
  });

  it('takes the format\'s corners: escapes in labels, blanks, timestamps, exponents; not NaN, +Inf, negatives or hex', () => {
    assert.equal(parseServerQueue(CORNERS), 1 + 2.5 + 1 + 0.5);
  });

  it('knows nothing from an answer with no queue gauge: HTML, JSON, another exporter, empty', () => {
    for (const text of ['', '<html><body>404 page not found</body></html>', '{"status":"ok"}', VLLM.replace(/^vllm:num_requests_waiting\{.*$/gm, ''), 'node_load1 0.5\n', '\u0000\u00ff\ufffd']) {
      assert.equal(parseServerQueue(text), undefined, JSON.stringify(text.slice(0, 60)));
    }
  });

  it('counts only the exact names, in lines that parse', () => {
    const refused = [
      'xvllm:num_requests_waiting 3',
      'vllm:num_requests_waiting_by_reason{reason="capacity"} 3',
      'vllm:num_requests_waiting_total 3',
      'VLLM:NUM_REQUESTS_WAITING 3',
      'vllm_num_requests_waiting 3',
      'tgi_queue_size-1 3',
      'tgi_queue_size',
      'tgi_queue_size ',
      'tgi_queue_size 3 4 5',
      'tgi_queue_size 3 soon',
      'tgi_queue_size{ 3',
      'tgi_queue_size{a="}" 3',
      'tgi_queue_size three',
      'tgi_queue_size 3garbage',
      '#tgi_queue_size 3',
    ];
    for (const line of refused) assert.equal(parseServerQueue(line), undefined, line);
  });

  it('judges no line longer than MAX_LINE_CHARS, however it arrives', () => {
    const long = `vllm:num_requests_waiting{model_name="${'m'.repeat(MAX_LINE_CHARS)}"} 3\ntgi_queue_size 1\n`;
    assert.equal(parseServerQueue(long), 1);
    const reader = new QueueGaugeReader();
    for (let i = 0; i < long.length; i += 1000) reader.push(long.slice(i, i + 1000));
    reader.end();
    assert.equal(reader.waiting, 1);
  });
});

/** Lines as the format has them, and near misses: the arbitraries the properties draw on. */
const gaugeName = fc.constantFrom(...QUEUE_GAUGES);
const nearMiss = fc.oneof(
  gaugeName.map((n) => `x${n}`),
  gaugeName.map((n) => `${n}_by_reason`),
  gaugeName.map((n) => `${n}:`),
  gaugeName.map((n) => n.toUpperCase()),
  gaugeName.map((n) => n.slice(1)),
  fc.constantFrom('vllm:num_requests_running', 'sglang:num_grammar_queue_reqs', 'llamacpp:requests_processing', 'tgi_batch_current_size'),
);
const labelValue = fc.string({ maxLength: 12 }).map((s) => s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n'));
const labels = fc.oneof(fc.constant(''), fc.array(fc.tuple(fc.constantFrom('engine', 'model_name', 'le', 'reason'), labelValue), { maxLength: 3 }).map((ls) => `{${ls.map(([k, v]) => `${k}="${v}"`).join(',')}}`));
const count = fc.nat({ max: 1000 });
const written = (n: number) => fc.constantFrom(String(n), `${n}.0`, n === 0 ? '0e+00' : `${n / 10}e+01`);
const blanks = fc.constantFrom(' ', '\t', '  ', ' \t');
const eol = fc.constantFrom('\n', '\r\n');
const otherLine = fc.oneof(
  fc.tuple(nearMiss, labels, blanks, count).map(([n, l, b, v]) => `${n}${l}${b}${v}`),
  fc.constantFrom('# HELP vllm:num_requests_waiting Number of requests waiting to be processed.', '# TYPE tgi_queue_size gauge', '', '# EOF', 'process_virtual_memory_bytes 1.2345678848e+010'),
  fc.string({ maxLength: 40 }),
);
/** A sample of a queue gauge, and the count it says. */
const queueLine = fc.tuple(gaugeName, labels, blanks, count).chain(([n, l, b, v]) => written(v).map((text) => ({ line: `${n}${l}${b}${text}`, value: v })));

/** Splits `text` at `cuts` (positions taken modulo its length). */
const splitAt = (text: string, cuts: number[]) => {
  const at = [...new Set(cuts.map((c) => (text.length === 0 ? 0 : c % text.length)))].sort((a, b) => a - b);
  return [0, ...at].map((start, i) => text.slice(start, at[i] ?? text.length));
};

describe('parseServerQueue, property-tested', () => {
  it('never throws, and gives undefined or a finite count, on any text', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 200, unit: 'binary' }), fc.array(fc.oneof(otherLine, queueLine.map((q) => q.line)), { maxLength: 20 }).map((ls) => ls.join('\n'))), (text) => {
        const n = parseServerQueue(text);
        return n === undefined || (Number.isFinite(n) && n >= 0);
      }),
      { numRuns: 2000 },
    );
  });

  it('sums the queue gauges\' samples among any other lines, CRLF or LF, and only them', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(otherLine.map((line) => ({ line, value: undefined })), queueLine), { maxLength: 30 }), eol, (lines, nl) => {
        // An arbitrary other line may hold a newline of its own and so end a line early, or join the next: kept whole here.
        const kept = lines.filter((l) => !/[\r\n]/.test(l.line));
        const values = kept.flatMap((l) => (l.value === undefined ? [] : [l.value]));
        const expected = values.length === 0 ? undefined : values.reduce((a, b) => a + b, 0);
        const got = parseServerQueue(kept.map((l) => l.line).join(nl));
        return expected === undefined ? got === undefined : got !== undefined && Math.abs(got - expected) < 1e-6 * Math.max(1, expected);
      }),
      { numRuns: 1500 },
    );
  });

  it('never counts a near miss of a gauge\'s name', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(nearMiss, labels, blanks, count), { minLength: 1, maxLength: 10 }), eol, (lines, nl) => parseServerQueue(lines.map(([n, l, b, v]) => `${n}${l}${b}${v}`).join(nl)) === undefined),
      { numRuns: 1000 },
    );
  });

  it('gives the same answer however the text is split into pieces', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(otherLine, queueLine.map((q) => q.line)), { maxLength: 20 }), eol, fc.array(fc.nat(), { maxLength: 12 }), (lines, nl, cuts) => {
        const text = lines.join(nl);
        const reader = new QueueGaugeReader();
        for (const piece of splitAt(text, cuts)) reader.push(piece);
        reader.end();
        return reader.waiting === parseServerQueue(text);
      }),
      { numRuns: 1500 },
    );
  });

  it('does linear work: a MiB of the worst lines it could be fed is read in well under a second', () => {
    const worst = [
      `vllm:num_requests_waiting{${'"\\'.repeat(2000)}\n`, // a label set of escapes and quotes that never closes
      `tgi_queue_size ${' '.repeat(4000)}1\n`,
      `${'vllm:num_requests_waiting'.repeat(500)}\n`,
      `vllm:num_requests_waiting{a="${'}'.repeat(4000)}"} 1\n`,
    ];
    for (const line of worst) {
      const text = line.repeat(Math.ceil((1024 * 1024) / line.length));
      const started = performance.now();
      parseServerQueue(text);
      const ms = performance.now() - started;
      assert.ok(ms < 1000, `${JSON.stringify(line.slice(0, 40))}…: ${ms.toFixed(0)} ms for ${text.length} characters`);
    }
  });
});

/** A metrics server on 127.0.0.1 answering as `answer` says; what the probe sent is kept. */
async function metricsServer(t: TestContext, answer: (req: IncomingMessage, res: ServerResponse) => void) {
  const seen: IncomingMessage[] = [];
  const server = createServer((req, res) => {
    seen.push(req);
    answer(req, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const client = new UpstreamClient(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  t.after(() => {
    client.close();
    server.closeAllConnections();
    return new Promise((r) => server.close(r));
  });
  return { client, seen };
}

const read = (probe: (signal: AbortSignal) => Promise<number | undefined>, ms = 2000) => probe(AbortSignal.timeout(ms));

describe('serverQueueProbe', () => {
  it('GETs the path as text, without credentials, and reads the queue', async (t) => {
    const { client, seen } = await metricsServer(t, (_req, res) => res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(VLLM));
    assert.equal(await read(serverQueueProbe(client, '/metrics')), 5);
    assert.equal(seen[0]!.method, 'GET');
    assert.equal(seen[0]!.url, '/metrics');
    assert.equal(seen[0]!.headers.accept, 'text/plain');
    assert.equal(seen[0]!.headers.authorization, undefined);
  });

  it('reads a gauge line that arrives in pieces, a multi-byte character split between them', async (t) => {
    const text = `# HELP x caf\u00e9 \u2014 \u{1F600}\n${LLAMACPP}`;
    const bytes = Buffer.from(text);
    const { client } = await metricsServer(t, (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      let at = 0;
      const next = () => {
        if (at >= bytes.length) return void res.end();
        res.write(bytes.subarray(at, (at += 7)));
        setImmediate(next);
      };
      next();
    });
    assert.equal(await read(serverQueueProbe(client, '/metrics')), 2);
  });

  it('says nothing for a non-2xx, garbage, or no queue gauge', async (t) => {
    const answers: [number, string | Buffer][] = [
      [503, 'llamacpp:requests_deferred 9\n'], // a server still loading: what it says is not a reading
      [404, '404 page not found'],
      [200, Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) % 256))],
      [200, '{"object":"error","message":"Not Found"}'],
    ];
    let i = 0;
    const { client } = await metricsServer(t, (_req, res) => {
      const [status, body] = answers[i++]!;
      res.writeHead(status).end(body);
    });
    for (const [status] of answers) assert.equal(await read(serverQueueProbe(client, '/metrics')), undefined, `status ${status}`);
  });

  it('reads at most maxBytes, judging only the complete lines among them, and closes the answer', async (t) => {
    const gauge = 'vllm:num_requests_waiting{engine="0",model_name="m"} 4.0\n';
    const filler = Buffer.from('vllm:time_to_first_token_seconds_bucket{engine="0",le="0.5",model_name="m"} 640.0\n'.repeat(1000));
    const total = 10 * 1024 * 1024;
    const answers = [{ head: gauge, tail: '' }, { head: '', tail: gauge }];
    const cutShort: boolean[] = [];
    let i = 0;
    const { client } = await metricsServer(t, (_req, res) => {
      // 10 MB of histogram lines, written as the socket takes them, with the gauge first or last.
      const { head, tail } = answers[i++]!;
      let written = 0;
      res.on('close', () => cutShort.push(!res.writableFinished));
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write(head);
      const pour = () => {
        while (written < total && !res.destroyed) {
          written += filler.length;
          if (!res.write(filler)) return void res.once('drain', pour);
        }
        if (!res.destroyed) res.end(tail);
      };
      pour();
    });
    const probe = serverQueueProbe(client, '/metrics', 64 * 1024);
    assert.equal(await read(probe), 4, 'the gauge in the first bytes counts');
    assert.equal(await read(probe), undefined, 'one past the cap is never read');
    await until('the server saw both answers end', () => cutShort.length === 2);
    assert.deepEqual(cutShort, [true, true], 'each answer was cut short, not read to its end');
    // A line cut by the cap: its digits are not all there, so it is not judged.
    const cut = serverQueueProbe((await metricsServer(t, (_req, res) => res.writeHead(200).end('tgi_queue_size 12345\n'))).client, '/metrics', 'tgi_queue_size 12'.length);
    assert.equal(await read(cut), undefined);
  });

  it('gives up when its signal aborts: a server that never answers, or stops half-way', async (t) => {
    const { client } = await metricsServer(t, (req, res) => {
      if (req.url === '/half') res.writeHead(200).write('# HELP tgi_queue_size Current queue size\ntgi_queue_size 3\n'); // and never ends
    });
    for (const path of ['/hang', '/half']) {
      const started = performance.now();
      assert.equal(await read(serverQueueProbe(client, path), 100), undefined, path);
      assert.ok(performance.now() - started < 1000, `${path}: gave up at its deadline`);
    }
  });

  it('says nothing when no server listens', async () => {
    const client = new UpstreamClient('http://127.0.0.1:1');
    try {
      assert.equal(await read(serverQueueProbe(client, '/metrics')), undefined);
    } finally {
      client.close();
    }
  });
});

describe('healthCheck.metricsPath in a policy', () => {
  const policy = (healthCheck: object) => ({ upstreams: [{ name: 'vllm', url: 'http://vllm:8000', healthCheck }] });
  const compiled = (healthCheck: object) => {
    const v = validatePolicy(policy(healthCheck));
    assert.ok(v.ok, v.ok ? '' : JSON.stringify(v.problems));
    return compileConfig(v.spec, { source: 'file', policy: 'p', generation: 0, hash: 'x' }).upstreams.get('vllm')!.healthCheck;
  };

  it('is read with the health check, and off when empty or absent', () => {
    assert.equal(compiled({ path: '/health', metricsPath: '/metrics' })?.metricsPath, '/metrics');
    assert.equal(compiled({ path: '/health', metricsPath: '' })?.metricsPath, undefined);
    assert.equal(compiled({ path: '/health' })?.metricsPath, undefined);
    assert.equal(compiled({ metricsPath: '' }), undefined);
  });

  it('is refused without the health check it is read with, naming the field', () => {
    const v = validatePolicy(policy({ metricsPath: '/metrics' }));
    assert.equal(v.ok, false);
    assert.deepEqual(v.ok ? [] : v.problems, [{ path: 'spec.upstreams[0].healthCheck.metricsPath', message: "needs healthCheck.path: the metrics are read on the health check's schedule" }]);
  });

  it('is a path, as healthCheck.path is', () => {
    for (const bad of ['metrics', '/metrics\n', '/m etrics', `/${'m'.repeat(256)}`]) {
      const v = validatePolicy(policy({ path: '/health', metricsPath: bad }));
      assert.equal(v.ok, false, bad);
      assert.ok(!v.ok && v.problems.some((p) => p.path === 'spec.upstreams[0].healthCheck.metricsPath'), JSON.stringify(v));
    }
  });
});
