/**
 * The tracing room's parts alone: the OTEL_* settings (a typo is taken as
 * unset), content capture and its caps, the dropping batch processor (a full
 * queue drops and counts, a failed export drops and counts, nothing waits),
 * the GenAI names, and the OTEL_* variables the injector hands a sidecar.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';
import { chartTracingEnv, tracingEnv } from '../../controller/tracing-env.js';
import { DroppingBatchProcessor, type DropReason } from '../../sidecar/tracing/batch-processor.js';
import { answerOf, promptOf } from '../../sidecar/tracing/content.js';
import { bounded, finishReasonsIn, modelIn, operationOf } from '../../sidecar/tracing/genai.js';
import { endpointOf, exportSettings } from '../../sidecar/tracing/settings.js';

describe('tracing settings from OTEL_*', () => {
  it('defaults to HTTP/protobuf, parentbased_always_on and the SDK\'s queue', () => {
    const s = exportSettings({});
    assert.deepEqual(s, {
      disabled: false,
      protocol: 'http/protobuf',
      serviceName: 'breakwater-sidecar',
      sampler: { parentBased: true, ratio: 1 },
      queue: { maxQueueSize: 2048, maxQueueBytes: 16 * 1024 * 1024, maxBatchSize: 512, scheduleDelayMs: 5000, exportTimeoutMs: 30_000 },
    });
    assert.equal(endpointOf({}, 'http/protobuf'), 'http://localhost:4318');
  });

  it('reads the standard variables, and takes a value that does not parse as unset', () => {
    const s = exportSettings({ OTEL_SDK_DISABLED: 'TRUE', OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'grpc', OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.25', OTEL_BSP_MAX_QUEUE_SIZE: 'lots', OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '9999' });
    assert.equal(s.disabled, true);
    assert.equal(s.protocol, 'grpc');
    assert.deepEqual(s.sampler, { parentBased: true, ratio: 0.25 });
    assert.equal(s.queue.maxQueueSize, 2048);
    assert.equal(s.queue.maxBatchSize, 2048, 'a batch is never larger than the queue');
    assert.equal(exportSettings({ OTEL_TRACES_EXPORTER: 'none' }).disabled, true);
    assert.deepEqual(exportSettings({ OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '7' }).sampler, { parentBased: false, ratio: 1 });
    assert.equal(endpointOf({ OTEL_EXPORTER_OTLP_ENDPOINT: 'https://user:pw@collector:4318/x?key=1' }, 'http/protobuf'), 'https://collector:4318', 'logged without user or query');
  });
});

describe('content in spans', () => {
  const body = (json: object) => Buffer.from(JSON.stringify(json));

  it('keeps the text of prompts only, up to the cap (of the JSON recorded), in the GenAI message shape', () => {
    const expected = [
      { role: 'system', parts: [{ type: 'text', content: 'be brief' }] },
      { role: 'user', parts: [{ type: 'text', content: 'hell' }] },
    ];
    const prompt = promptOf(body({ model: 'm', api_key: 'sk-in-the-body', system: 'be brief', messages: [{ role: 'user', content: [{ type: 'text', text: 'hello there' }] }, { role: 'assistant', content: 'more text' }] }), { maxChars: JSON.stringify(expected).length });
    assert.deepEqual(JSON.parse(prompt!), expected);
    assert.ok(!prompt!.includes('sk-in-the-body'));
    assert.equal(promptOf(Buffer.from('not json'), { maxChars: 10 }), undefined);
    assert.equal(promptOf(Buffer.alloc(2 * 1024 * 1024, 0x20), { maxChars: 10 }), undefined, 'a body too large to be worth parsing');
  });

  it('keeps an answer\'s text up to the cap, with its finish reason', () => {
    const expected = [{ role: 'assistant', parts: [{ type: 'text', content: 'xxxxx' }], finish_reason: 'stop' }];
    assert.deepEqual(JSON.parse(answerOf('x'.repeat(100), ['stop'], { maxChars: JSON.stringify(expected).length })!), expected);
  });
});

describe('GenAI names', () => {
  it('bounds strings, names operations and reads models and finish reasons', () => {
    assert.equal(bounded('m'.repeat(1000))!.length, 256);
    assert.equal(bounded(`${'a'.repeat(255)}😀`)!.length, 255, 'a surrogate pair is not split');
    assert.equal(operationOf('/v1/chat/completions?x=1'), 'chat');
    assert.equal(operationOf('/v1/completions'), 'text_completion');
    assert.equal(operationOf('/v1/embeddings'), 'embeddings');
    assert.equal(operationOf('/v1/messages'), 'chat');
    assert.equal(modelIn('{"id":"x","model":"gpt-4o-2024","choices":[]}'), 'gpt-4o-2024');
    assert.deepEqual(finishReasonsIn('{"choices":[{"finish_reason":"stop"},{"finish_reason":"length"},{"finish_reason":"stop"}]}'), ['stop', 'length']);
    assert.deepEqual(finishReasonsIn('{"type":"message_delta","delta":{"stop_reason":"end_turn"}}'), ['end_turn']);
  });
});

describe('the dropping batch processor', () => {
  const span = () => ({}) as ReadableSpan;
  const exporter = (answer: (done: (ok: boolean) => void) => void) => {
    const batches: number[] = [];
    const e: SpanExporter = {
      export: (spans, callback) => {
        batches.push(spans.length);
        answer((ok) => callback({ code: ok ? 0 : 1 }));
      },
      shutdown: async () => {},
    };
    return { e, batches };
  };
  const counter = () => {
    const c = { exported: 0, dropped: { 'queue-full': 0, 'export-failed': 0, 'collector-down': 0 } };
    return { c, counts: { exported: (n: number) => (c.exported += n), dropped: (r: DropReason, n: number) => (c.dropped[r] += n) } };
  };
  const queue = { maxQueueSize: 4, maxQueueBytes: 1024 * 1024, maxBatchSize: 2, scheduleDelayMs: 10_000, exportTimeoutMs: 50 };

  it('exports full batches at once, one export at a time', async () => {
    const { e, batches } = exporter((done) => setTimeout(() => done(true), 5));
    const { c, counts } = counter();
    const p = new DroppingBatchProcessor(e, queue, counts);
    for (let i = 0; i < 4; i++) p.onEnd(span());
    await p.forceFlush();
    assert.deepEqual(batches, [2, 2]);
    assert.equal(c.exported, 4);
  });

  it('drops spans past the queue and batches whose export fails or hangs, counting each, without waiting', async () => {
    const { e } = exporter(() => {}); // a collector that never answers
    const { c, counts } = counter();
    const p = new DroppingBatchProcessor(e, queue, counts);
    const started = performance.now();
    for (let i = 0; i < 10; i++) p.onEnd(span());
    assert.ok(performance.now() - started < 20, 'onEnd never waits');
    await p.forceFlush();
    assert.equal(c.dropped['queue-full'] + c.dropped['export-failed'] + c.dropped['collector-down'], 10, JSON.stringify(c));
    assert.ok(c.dropped['queue-full'] >= 6);
    assert.equal(c.dropped['export-failed'], 2, 'the batch whose export hung');
    assert.equal(c.dropped['collector-down'], 2, 'and what was queued behind it, once the collector was found gone');
    const failing = counter();
    const q = new DroppingBatchProcessor(exporter((done) => done(false)).e, queue, failing.counts);
    q.onEnd(span());
    await q.forceFlush();
    assert.deepEqual(failing.c.dropped, { 'queue-full': 0, 'export-failed': 1, 'collector-down': 0 });
  });

  it('holds no spans for a collector that is gone: drops them as they end for a backoff (1 s, doubling), then tries it with one batch', async () => {
    let now = 0;
    let up = false;
    const { e, batches } = exporter((done) => done(up));
    const { c, counts } = counter();
    const p = new DroppingBatchProcessor(e, { ...queue, maxQueueSize: 100 }, counts, () => now);
    const end = async (n: number) => {
      for (let i = 0; i < n; i++) p.onEnd(span());
      await p.forceFlush();
    };
    await end(1); // refused: down for 1 s
    assert.deepEqual(c.dropped, { 'queue-full': 0, 'export-failed': 1, 'collector-down': 0 });
    await end(50);
    assert.equal(c.dropped['collector-down'], 50, 'nothing queued during the backoff');
    now = 1000;
    for (let i = 0; i < 50; i++) p.onEnd(span());
    assert.equal(c.dropped['collector-down'], 50 + 48, 'after it, one batch (2) to try the collector with');
    await p.forceFlush(); // refused again: down for 2 s
    now = 2999;
    await end(1);
    assert.equal(c.dropped['collector-down'], 99);
    now = 3000;
    up = true;
    await end(2); // the trial batch gets through
    await end(10);
    assert.equal(c.exported, 12, 'back to normal: everything queued and exported');
    assert.equal(batches.length, 3 + 5);
  });
});

describe('the OTEL_* variables an injected sidecar gets', () => {
  it('takes the pod\'s own over the chart\'s, and nothing else of the app\'s', () => {
    const defaults = chartTracingEnv({ BREAKWATER_SIDECAR_OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', BREAKWATER_SIDECAR_OTEL_TRACES_SAMPLER_ARG: '0.1', BREAKWATER_SIDECAR_OTEL_BSP_MAX_QUEUE_SIZE: '', BREAKWATER_SIDECAR_SECRET: 'x', OTEL_TRACES_SAMPLER: 'always_on' });
    assert.deepEqual(defaults, [
      { name: 'OTEL_EXPORTER_OTLP_ENDPOINT', value: 'http://collector:4318' },
      { name: 'OTEL_TRACES_SAMPLER_ARG', value: '0.1' },
    ]);
    const pod = {
      spec: {
        containers: [
          { name: 'app', env: [{ name: 'OTEL_EXPORTER_OTLP_ENDPOINT', value: 'http://node-agent:4318' }, { name: 'OTEL_SERVICE_NAME', value: 'shop' }, { name: 'OTEL_EXPORTER_OTLP_HEADERS', valueFrom: { secretKeyRef: { name: 'otel', key: 'headers' } } }, { name: 'OPENAI_API_KEY', value: 'sk' }] },
        ],
      },
    };
    assert.deepEqual(tracingEnv(pod, defaults).env, [
      { name: 'OTEL_EXPORTER_OTLP_ENDPOINT', value: 'http://node-agent:4318' },
      { name: 'OTEL_EXPORTER_OTLP_HEADERS', valueFrom: { secretKeyRef: { name: 'otel', key: 'headers' } } },
      { name: 'OTEL_TRACES_SAMPLER_ARG', value: '0.1' },
    ]);
  });
});
