/**
 * What an app cannot make tracing do (the red team's findings, issue 30):
 * grow a recorded prompt past maxChars by its shape, grow the export queue
 * past its bytes or past clamped OTEL_BSP_* numbers, put a matrix parameter
 * in url.path, have its tracestate forwarded with a trace it does not belong
 * to (or an empty one), or get a time to first chunk or a fallback tier that
 * did not happen; and a recovery tier's retry events number its own attempts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BasicTracerProvider, type ReadableSpan, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import { DroppingBatchProcessor, type DropReason } from '../../sidecar/tracing/batch-processor.js';
import { answerOf, promptOf } from '../../sidecar/tracing/content.js';
import { pathOf } from '../../sidecar/tracing/genai.js';
import { requestTracer } from '../../sidecar/tracing/otel-scope.js';
import { endRequest, startRequest } from '../../sidecar/tracing/request-span.js';
import { exportSettings, QUEUE_LIMITS } from '../../sidecar/tracing/settings.js';
import { spanBytes } from '../../sidecar/tracing/span-size.js';
import type { TraceAttributes, TraceScope } from '../../sidecar/proxy/trace-scope.js';
import { traceAttempt } from '../../sidecar/proxy/layers/trace-attempt.js';
import { ManualClock } from '../../sidecar/resilience/clock.js';
import { answer, contextAt, innerGiving, metrics, requestTo, settle, upstreamOf } from '../support/layer-kit.js';
import { retry } from '../../sidecar/proxy/layers/retry.js';
import { DeliveredContent } from '../../sidecar/resilience/stream-verifier.js';

const body = (json: object) => Buffer.from(JSON.stringify(json));

describe('recorded content is capped in its recorded size', () => {
  it('holds every attribute to maxChars, whatever the shape of the messages', () => {
    for (const maxChars of [1, 10, 100, 2048]) {
      const shapes = {
        parts: { messages: [{ role: 'user', content: Array.from({ length: maxChars }, () => 'a') }] },
        messages: { messages: Array.from({ length: maxChars }, () => ({ role: 'x'.repeat(40), content: 'a' })) },
        escapes: { messages: [{ role: 'user', content: '\u0001"\\\n'.repeat(maxChars) }] },
        surrogates: { system: '😀\ud800'.repeat(maxChars), messages: [] },
      };
      for (const [shape, json] of Object.entries(shapes)) {
        const recorded = promptOf(body(json), { maxChars });
        if (recorded !== undefined) {
          assert.ok(recorded.length <= maxChars, `${shape} at ${maxChars}: ${recorded.length}`);
          JSON.parse(recorded);
        }
      }
      const answer = answerOf('"\n'.repeat(maxChars), ['stop'], { maxChars });
      if (answer !== undefined) assert.ok(answer.length <= maxChars, `answer at ${maxChars}: ${answer.length}`);
    }
    assert.equal(promptOf(body({ messages: [{ role: 'user', content: Array.from({ length: 65536 }, () => 'a') }] }), { maxChars: 65536 })!.length <= 65536, true);
  });
});

describe('the export queue is bounded in bytes and in clamped numbers', () => {
  const span = (chars: number) => ({ name: 'chat', attributes: { 'gen_ai.input.messages': 'x'.repeat(chars) }, events: [], links: [] }) as unknown as ReadableSpan;
  const hung: SpanExporter = { export: () => {}, shutdown: async () => {} };

  it('drops spans past its byte budget as queue-full, the batch in export included', async () => {
    const dropped = { 'queue-full': 0, 'export-failed': 0, 'collector-down': 0 };
    const counts = { exported: () => {}, dropped: (r: DropReason, n: number) => (dropped[r] += n) };
    const maxQueueBytes = 1024 * 1024;
    const p = new DroppingBatchProcessor(hung, { maxQueueSize: 10_000, maxQueueBytes, maxBatchSize: 512, scheduleDelayMs: 0, exportTimeoutMs: 60_000 }, counts);
    const big = span(65536);
    assert.ok(spanBytes(big) > 2 * 65536, 'a string counts two bytes a character');
    for (let i = 0; i < 100; i++) p.onEnd(big);
    await new Promise((r) => setTimeout(r, 20)); // a batch goes to the hung collector
    for (let i = 0; i < 100; i++) p.onEnd(big);
    const held = Math.floor(maxQueueBytes / spanBytes(big));
    assert.equal(dropped['queue-full'], 200 - held, 'no more than the budget, queued or in export');
  });

  it('clamps OTEL_BSP_* numbers an app sets to maxima', () => {
    const s = exportSettings({ OTEL_BSP_MAX_QUEUE_SIZE: '1000000', OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '1000000', OTEL_BSP_SCHEDULE_DELAY: '99999999', OTEL_BSP_EXPORT_TIMEOUT: '99999999' });
    assert.deepEqual(s.queue, { maxQueueSize: QUEUE_LIMITS.spans, maxQueueBytes: 16 * 1024 * 1024, maxBatchSize: QUEUE_LIMITS.batch, scheduleDelayMs: 60_000, exportTimeoutMs: 60_000 });
    assert.equal(QUEUE_LIMITS.spans, 16_384);
  });
});

/** A scope that keeps what is set on it and its events. */
function recordingScope(): TraceScope & { attributes: Record<string, unknown>; events: [string, TraceAttributes | undefined][] } {
  const scope = {
    attributes: {} as Record<string, unknown>,
    events: [] as [string, TraceAttributes | undefined][],
    recording: true,
    sideBySide: false,
    content: undefined,
    propagates: true,
    set: (a: TraceAttributes) => void Object.assign(scope.attributes, a),
    event: (name: string, a?: TraceAttributes) => void scope.events.push([name, a]),
    child: () => recordingScope(),
    end: () => {},
    headers: () => ({ traceparent: '00-' }),
  };
  return scope;
}

describe('what the spans say', () => {
  it('drops matrix parameters from url.path, as well as the query', () => {
    assert.equal(pathOf('/raw/v1/chat/completions;key=SECRET'), '/raw/v1/chat/completions');
    assert.equal(pathOf('/raw/v1;api-key=S/chat/completions?key=Q'), '/raw/v1/chat/completions');
  });

  it('forwards no tracestate with a new trace, nor an empty one', () => {
    const tracer = requestTracer(new BasicTracerProvider().getTracer('t'), { propagate: true, content: undefined });
    const valid = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    assert.equal(tracer.start('s', valid, 'congo=t61', {}).headers().tracestate, 'congo=t61');
    assert.ok(!('tracestate' in tracer.start('s', valid, `a=${'x'.repeat(12_000)}`, {}).headers()), 'over the limit: no header at all');
  });

  it('sends the upstream no tracestate of the app\'s with a trace it started', async () => {
    const tracer = requestTracer(new BasicTracerProvider().getTracer('t'), { propagate: true, content: undefined });
    const clock = new ManualClock();
    const upstream = upstreamOf(clock);
    for (const traceparent of ['ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', undefined]) {
      const inner = innerGiving(answer());
      const appHeaders = { ...(traceparent ? { traceparent } : {}), tracestate: 'orphan=1', 'x-app': 'kept' };
      const trace = tracer.start('s', traceparent, 'orphan=1', {});
      await traceAttempt(inner)(requestTo(upstream, { headers: appHeaders }), contextAt(clock, { trace }));
      const sent = inner.calls[0]!.headers;
      assert.equal(sent.tracestate, undefined, `a new trace (the app's traceparent: ${traceparent})`);
      assert.match(String(sent.traceparent), /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
      assert.equal(sent['x-app'], 'kept');
    }
  });

  const request = (stream: boolean) => ({ appPath: '/v1/chat/completions', model: 'm', method: 'POST', stream, body: null, upstream: { config: { name: 'chain', api: 'openai' } } }) as never;
  const ctx = { startedAt: 0, report: { attempts: 9, recoveries: 0, hedge: undefined, mode: 'normal' } } as never;
  const ended = (stream: boolean, d: object) => {
    const span = recordingScope();
    startRequest({ start: () => span }, {}, request(stream));
    endRequest(span, ctx, { failure: 'none', tier: 'primary', firstByteAt: 2000, ...d } as never);
    return span.attributes;
  };

  it('gives a time to first chunk only for a stream relayed to the app, and a fallback tier only when one answered', () => {
    assert.equal(ended(true, { status: 200, outcome: 'ok' })['gen_ai.response.time_to_first_chunk'], 2);
    assert.equal(ended(false, { status: 200, outcome: 'ok' })['gen_ai.response.time_to_first_chunk'], undefined, 'a plain answer has no chunks');
    assert.equal(ended(true, { status: 429, outcome: 'upstream_error', failure: 'rate-limited' })['gen_ai.response.time_to_first_chunk'], undefined);
    assert.equal(ended(true, { status: 503, outcome: 'local_error', failure: 'overloaded' })['gen_ai.response.time_to_first_chunk'], undefined);
    assert.equal(ended(false, { status: 200, outcome: 'ok', tier: 'fb1' })['breakwater.fallback.tier'], 'fb1');
    assert.equal(ended(false, { status: 503, outcome: 'upstream_error', failure: 'overloaded', tier: 'fb2' })['breakwater.fallback.tier'], undefined, 'every tier failed');
  });

  it('numbers a recovery tier\'s retries within that tier (the break was an earlier tier\'s attempt)', async () => {
    const clock = new ManualClock();
    const tier = recordingScope();
    const ctx = contextAt(clock, { trace: tier });
    const upstream = upstreamOf(clock, { retry: { attempts: 3, backoff: { base: '1ms', max: '1ms', jitter: 'none' } } });
    const resume = { delivered: new DeliveredContent(), broke: { upstream: 'primary', failure: 'reset' as const } };
    const pending = retry({ clock, metrics })(innerGiving(answer(503, 'overloaded')))(requestTo(upstream, { stream: true, resume }), ctx);
    for (let i = 0; i < 100 && tier.events.length < 2; i++) {
      await settle();
      clock.advance(1);
    }
    await pending;
    assert.deepEqual(tier.events.map(([name, a]) => [name, a?.['breakwater.attempt.number'], a?.['breakwater.retry.reason']]), [['breakwater.retry', 1, 'reset'], ['breakwater.retry', 2, 'overloaded']]);
  });
});
