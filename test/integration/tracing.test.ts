/**
 * OpenTelemetry tracing against a real Jaeger (test/support/jaeger.ts), read
 * back through its query API: a request retried on a 429, handed to a
 * fallback upstream and recovered mid-stream is one trace under the app's
 * traceparent, with the GenAI attributes, the usage and what the layers
 * decided; each upstream was sent the traceparent of its attempt's span; a
 * hedge shows both attempts and which won; spans hold no prompt, answer or
 * credential unless the policy opts in, and then within its cap; with Jaeger
 * gone, requests are no slower and the dropped spans are counted; with
 * tracing off, the app's traceparent reaches the upstream untouched.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { before, describe, it } from 'node:test';
import OpenAI from 'openai';
import { stringify } from 'yaml';
import { jaegerBinary, startJaeger, tag, type Jaeger, type JaegerSpan } from '../support/jaeger.js';
import { CANONICAL, startModelUpstream } from '../support/model-upstream.js';
import { spawnSidecar } from '../support/sidecar-process.js';
import { until } from '../support/until.js';

const SECRET = 'sk-secret-f00dfeedcafe';
const PROMPT = 'the-secret-prompt-marker tell me a story';
const hex = (bytes: number) => randomBytes(bytes).toString('hex');
const env = (jaeger: Jaeger, extra: Record<string, string> = {}) => ({ OTEL_EXPORTER_OTLP_ENDPOINT: jaeger.otlpHttp, OTEL_BSP_SCHEDULE_DELAY: '100', ...extra });
const sdk = (dataUrl: string, upstream: string, traceparent?: string) =>
  new OpenAI({ apiKey: SECRET, baseURL: `${dataUrl}/${upstream}/v1`, maxRetries: 0, defaultHeaders: traceparent ? { traceparent, tracestate: 'app=1' } : {} });

async function streamed(client: OpenAI): Promise<string> {
  const stream = await client.chat.completions.create({ model: 'gpt-test', messages: [{ role: 'user', content: PROMPT }], stream: true, temperature: 0 });
  let text = '';
  for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
  return text;
}

/** The trace's spans once `ready` holds of them (export is batched). */
async function traceOf(jaeger: Jaeger, traceId: string, ready: (spans: JaegerSpan[]) => boolean): Promise<JaegerSpan[]> {
  let spans: JaegerSpan[] = [];
  await until(`trace ${traceId}`, async () => ready((spans = await jaeger.spans(traceId))), Boolean, 15_000).catch(() => assert.fail(`trace ${traceId} incomplete:\n${tree(spans)}`));
  return spans;
}

/** Resolves once the sidecar has loaded the SDK. */
const tracingOn = (sidecar: { logs: Record<string, unknown>[] }) => until('tracing on', () => sidecar.logs.some((l) => l.msg === 'tracing on: exporting spans over OTLP'), Boolean, 10_000);

const parentOf = (span: JaegerSpan) => span.references.find((r) => r.refType === 'CHILD_OF')?.spanID;
// In the order they started; spans that started in the same microsecond (a tier its open breaker refused at once, then the next), in the order they ended.
const childrenOf = (spans: JaegerSpan[], parent: JaegerSpan) => spans.filter((s) => parentOf(s) === parent.spanID).sort((a, b) => a.startTime - b.startTime || a.startTime + a.duration - (b.startTime + b.duration));
const kind = (span: JaegerSpan) => tag(span, 'span.kind');

/** The trace as an indented tree of span names and a few attributes, for messages and for the report. */
export function tree(spans: JaegerSpan[]): string {
  const ids = new Set(spans.map((s) => s.spanID));
  const line = (s: JaegerSpan, depth: number): string[] => {
    const shown = ['breakwater.tier.role', 'http.response.status_code', 'error.type', 'breakwater.retry.stopped', 'breakwater.breaker.state', 'breakwater.hedge.role', 'breakwater.hedge.result', 'breakwater.recovery.result', 'gen_ai.usage.output_tokens']
      .map((k) => (tag(s, k) === undefined ? '' : `${k.split('.').slice(-2).join('.')}=${String(tag(s, k))}`))
      .filter(Boolean);
    return [`${'  '.repeat(depth)}${s.operationName} [${kind(s)}] ${shown.join(' ')}`, ...childrenOf(spans, s).flatMap((c) => line(c, depth + 1))];
  };
  return spans.filter((s) => !ids.has(parentOf(s) ?? '')).flatMap((root) => line(root, 0)).join('\n');
}

describe('tracing into Jaeger', () => {
  before(() => {
    jaegerBinary(); // built once, before the first test's clock starts
  });

  it('shows a request retried on a 429, fallen back and recovered as one trace under the app\'s traceparent', async (t) => {
    const jaeger = await startJaeger(t);
    const primary = await startModelUpstream(t, { fault: () => ({ status: 429, headers: { 'retry-after-ms': '50' } }) });
    const backup = await startModelUpstream(t, { fault: (call) => (call.n === 1 ? { cutAfter: 20 } : undefined) });
    const policy = {
      tracing: { enabled: true },
      upstreams: [
        { name: 'primary', url: primary.url, retry: { attempts: 2 }, circuitBreaker: { failOn: ['rate-limited'], consecutiveFailures: 2 }, fallback: [{ upstream: 'backup' }] },
        { name: 'backup', url: backup.url, timeouts: { streamIdle: '500ms' } },
      ],
    };
    const sidecar = await spawnSidecar(t, stringify(policy), env(jaeger));
    await tracingOn(sidecar);
    const traceId = hex(16);
    const appSpan = hex(8);
    assert.equal(await streamed(sdk(sidecar.dataUrl, 'primary', `00-${traceId}-${appSpan}-01`)), CANONICAL);

    const spans = await traceOf(jaeger, traceId, (s) => s.filter((x) => kind(x) === 'client').length >= 4 && s.some((x) => x.operationName === 'stream recovery' && tag(x, 'breakwater.recovery.result')));
    t.diagnostic(`\n${tree(spans)}`);
    assert.ok(spans.every((s) => s.traceID === traceId), 'every span is in the app\'s trace');
    const [server, ...others] = spans.filter((s) => kind(s) === 'server');
    assert.equal(others.length, 0, 'one server span');
    assert.equal(parentOf(server!), appSpan, 'the request\'s span is a child of the app\'s');
    assert.equal(tag(server!, 'gen_ai.operation.name'), 'chat');
    assert.equal(tag(server!, 'gen_ai.provider.name'), 'openai');
    assert.equal(tag(server!, 'gen_ai.request.model'), 'gpt-test');
    assert.equal(tag(server!, 'breakwater.fallback.tier'), 'backup');
    assert.equal(tag(server!, 'breakwater.recoveries'), 1);
    assert.ok(Number(tag(server!, 'gen_ai.usage.output_tokens')) > 0, 'the usage');
    assert.ok(Number(tag(server!, 'gen_ai.response.time_to_first_chunk')) > 0, 'the time to first token');

    const [primaryTier, backupTier, recovery] = childrenOf(spans, server!);
    assert.equal(primaryTier!.operationName, 'tier primary');
    assert.equal(tag(primaryTier!, 'breakwater.retry.stopped'), 'attempts-exhausted');
    const retried = primaryTier!.logs.find((l) => l.fields.some((f) => f.key === 'event' && f.value === 'breakwater.retry'));
    assert.ok(retried, 'the retry is an event of the tier');
    const field = (key: string) => retried!.fields.find((f) => f.key === key)?.value;
    assert.equal(field('breakwater.retry.reason'), 'rate-limited');
    assert.equal(field('breakwater.retry.retry_after_ms'), 50, 'the Retry-After the upstream asked for');
    const primaryAttempts = childrenOf(spans, primaryTier!);
    assert.deepEqual(primaryAttempts.map((a) => [kind(a), tag(a, 'http.response.status_code'), tag(a, 'error.type')]), [['client', 429, 'rate-limited'], ['client', 429, 'rate-limited']]);
    assert.equal(tag(primaryAttempts[0]!, 'server.address'), '127.0.0.1');
    assert.equal(tag(primaryAttempts[0]!, 'gen_ai.operation.name'), 'chat');

    assert.equal(backupTier!.operationName, 'tier backup');
    assert.equal(tag(backupTier!, 'breakwater.tier.role'), 'fallback');
    const [broken, ...moreBroken] = childrenOf(spans, backupTier!);
    assert.equal(moreBroken.length, 0);
    assert.equal(tag(broken!, 'error.type'), 'reset', 'the cut stream');

    assert.equal(recovery!.operationName, 'stream recovery');
    assert.equal(tag(recovery!, 'breakwater.recovery.result'), 'recovered');
    assert.equal(tag(recovery!, 'breakwater.recovery.strategy'), 'regenerate');
    const recoveryTiers = childrenOf(spans, recovery!);
    assert.deepEqual(recoveryTiers.map((s) => [s.operationName, tag(s, 'breakwater.tier.role')]), [['tier primary', 'recovery'], ['tier backup', 'recovery']]);
    assert.equal(tag(recoveryTiers[0]!, 'breakwater.breaker.state'), 'open', 'the primary\'s breaker refused');
    assert.equal(childrenOf(spans, recoveryTiers[0]!).length, 0, 'so no attempt was made there');
    const [again] = childrenOf(spans, recoveryTiers[1]!);
    assert.equal(tag(again!, 'breakwater.recovery.strategy'), 'regenerate');
    assert.ok(Number(tag(again!, 'gen_ai.usage.output_tokens')) > 0);
    assert.deepEqual(tag(again!, 'gen_ai.response.finish_reasons'), '["stop"]');
    assert.equal(tag(again!, 'gen_ai.response.model'), 'gpt-test');

    // Each upstream was sent the traceparent of its attempt's span, with the app's tracestate.
    const sentTo = (call: { headers: Record<string, unknown> }) => String(call.headers.traceparent);
    assert.deepEqual(primary.calls.map(sentTo), primaryAttempts.map((a) => `00-${traceId}-${a.spanID}-01`));
    assert.deepEqual(backup.calls.map(sentTo), [broken, again].map((a) => `00-${traceId}-${a!.spanID}-01`));
    assert.equal(backup.calls[1]!.headers.tracestate, 'app=1');

    const exported = JSON.stringify(spans);
    for (const secret of [SECRET, 'the-secret-prompt-marker', 'w17 w18']) assert.ok(!exported.includes(secret), `no span holds ${secret}`);
  });

  it('shows a hedge\'s two attempts, linked, and which won', async (t) => {
    const jaeger = await startJaeger(t);
    const upstream = await startModelUpstream(t, { fault: (call) => (call.n === 1 ? { silentForMs: 2000 } : undefined) });
    const sidecar = await spawnSidecar(t, stringify({ tracing: { enabled: true }, upstreams: [{ name: 'primary', url: upstream.url, hedge: { delay: '100ms' } }] }), env(jaeger));
    await tracingOn(sidecar);
    const traceId = hex(16);
    await sdk(sidecar.dataUrl, 'primary', `00-${traceId}-${hex(8)}-01`).chat.completions.create({ model: 'gpt-test', messages: [{ role: 'user', content: 'hi' }] });
    const spans = await traceOf(jaeger, traceId, (s) => s.filter((x) => kind(x) === 'client').length === 2 && s.some((x) => kind(x) === 'server'));
    t.diagnostic(`\n${tree(spans)}`);
    const tier = spans.find((s) => s.operationName === 'tier primary')!;
    assert.equal(tag(tier, 'breakwater.hedge.result'), 'won');
    const [first, hedge] = childrenOf(spans, tier);
    assert.equal(tag(first!, 'breakwater.outcome'), 'cancelled', 'the first attempt lost and was cancelled');
    assert.equal(tag(hedge!, 'breakwater.hedge.role'), 'hedge');
    assert.equal(tag(hedge!, 'breakwater.outcome'), 'answer');
    assert.ok(hedge!.references.some((r) => r.refType === 'FOLLOWS_FROM' && r.spanID === first!.spanID), 'the hedge is linked to the first attempt');
  });

  it('records prompts and answers only when the policy opts in, within its cap, and never a credential', async (t) => {
    const jaeger = await startJaeger(t);
    const upstream = await startModelUpstream(t);
    const maxChars = 120; // of each attribute's JSON, the message shape included
    const policy = (record: boolean) => stringify({ tracing: { enabled: true, content: { record, maxChars } }, upstreams: [{ name: 'primary', url: upstream.url }] });
    const room = (message: object) => maxChars - JSON.stringify([{ ...message, parts: [{ type: 'text', content: '' }] }]).length;
    const sidecar = await spawnSidecar(t, policy(false), env(jaeger));
    await tracingOn(sidecar);
    const ask = async (plain: boolean) => {
      const traceId = hex(16);
      const client = sdk(sidecar.dataUrl, 'primary', `00-${traceId}-${hex(8)}-01`);
      if (plain) await client.chat.completions.create({ model: 'gpt-test', messages: [{ role: 'user', content: PROMPT }] });
      else await streamed(client);
      return traceOf(jaeger, traceId, (s) => s.some((x) => kind(x) === 'server') && s.some((x) => kind(x) === 'client'));
    };
    for (const plain of [true, false]) {
      const exported = JSON.stringify(await ask(plain));
      assert.ok(!exported.includes('the-secret') && !exported.includes('w1 w2') && !exported.includes(SECRET), 'nothing of the content without the opt-in');
    }
    writeFileSync(sidecar.policyFile, policy(true)); // applied without a restart
    await until('the new policy', () => sidecar.logs.some((l) => l.msg === 'config applied'), Boolean, 10_000);
    for (const plain of [true, false]) {
      const spans = await ask(plain);
      const input = JSON.parse(String(tag(spans.find((s) => kind(s) === 'server')!, 'gen_ai.input.messages')));
      assert.deepEqual(input, [{ role: 'user', parts: [{ type: 'text', content: PROMPT.slice(0, room({ role: 'user' })) }] }]);
      const recorded = String(tag(spans.find((s) => kind(s) === 'client')!, 'gen_ai.output.messages'));
      const output = JSON.parse(recorded);
      assert.equal(output[0].parts[0].content, CANONICAL.slice(0, room(output[0])), `the answer, cut at ${maxChars} characters of JSON (${plain ? 'plain' : 'streamed'})`);
      assert.ok(recorded.length <= maxChars);
      assert.ok(!JSON.stringify(spans).includes(SECRET), 'never the credential');
    }
  });

  it('with Jaeger gone, answers as fast and counts the spans it drops', async (t) => {
    const jaeger = await startJaeger(t);
    const upstream = await startModelUpstream(t);
    const sidecar = await spawnSidecar(t, stringify({ tracing: { enabled: true }, upstreams: [{ name: 'primary', url: upstream.url }] }), env(jaeger, { OTEL_BSP_MAX_QUEUE_SIZE: '16', OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '8' }));
    await tracingOn(sidecar);
    const client = sdk(sidecar.dataUrl, 'primary');
    const timed = async () => {
      const started = performance.now();
      await client.chat.completions.create({ model: 'gpt-test', messages: [{ role: 'user', content: 'hi' }] });
      return performance.now() - started;
    };
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    for (let i = 0; i < 10; i++) await timed(); // warm
    const up: number[] = [];
    for (let i = 0; i < 40; i++) up.push(await timed());
    await jaeger.stop();
    const down: number[] = [];
    for (let i = 0; i < 40; i++) down.push(await timed());
    t.diagnostic(`median with Jaeger ${median(up).toFixed(2)} ms, without ${median(down).toFixed(2)} ms; slowest without ${Math.max(...down).toFixed(1)} ms`);
    assert.ok(median(down) < median(up) * 1.5 + 2, 'no slower without Jaeger');
    assert.ok(Math.max(...down) < 500, 'no request waits for the exporter');
    const dropped = async () => {
      const text = await (await fetch(`${sidecar.adminUrl}/metrics`)).text();
      return text.split('\n').filter((l) => l.startsWith('breakwater_trace_spans_dropped_total{')).reduce((n, l) => n + Number(l.split(' ').at(-1)), 0);
    };
    await until('spans counted as dropped', dropped, (n) => n >= 40, 15_000);
  });

  it('when off, makes no span and forwards the app\'s traceparent untouched; propagate: false does too', async (t) => {
    const jaeger = await startJaeger(t);
    const upstream = await startModelUpstream(t);
    const policy = (tracing: object) => stringify({ tracing, upstreams: [{ name: 'primary', url: upstream.url }] });
    const sidecar = await spawnSidecar(t, policy({ enabled: false }), env(jaeger));
    const send = async () => {
      const traceId = hex(16);
      const traceparent = `00-${traceId}-${hex(8)}-01`;
      await sdk(sidecar.dataUrl, 'primary', traceparent).chat.completions.create({ model: 'gpt-test', messages: [{ role: 'user', content: 'hi' }] });
      return { traceId, traceparent, sent: upstream.calls.at(-1)!.headers.traceparent };
    };
    const off = await send();
    assert.equal(off.sent, off.traceparent);
    assert.ok(!sidecar.logs.some((l) => l.msg === 'tracing on: exporting spans over OTLP'), 'the SDK was never loaded');
    writeFileSync(sidecar.policyFile, policy({ enabled: true, propagate: false }));
    await tracingOn(sidecar);
    const kept = await send();
    assert.equal(kept.sent, kept.traceparent, 'propagate: false forwards the app\'s');
    await traceOf(jaeger, kept.traceId, (s) => s.some((x) => kind(x) === 'client'));
    await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual(await jaeger.spans(off.traceId), [], 'no span of the request made while off');
  });
});
