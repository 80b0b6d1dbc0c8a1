/**
 * The layers that shape or replace an attempt: injected faults (delay and
 * abort, in the app's API's error shape) and degraded mode's request.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { anthropic } from '../../../sidecar/proxy/dialects/anthropic.js';
import { ollamaChat } from '../../../sidecar/proxy/dialects/ollama.js';
import { degradedRequest } from '../../../sidecar/proxy/layers/degraded-request.js';
import { faults } from '../../../sidecar/proxy/layers/faults.js';
import { answer, contextAt, innerGiving, ManualClock, metrics, requestTo, settle, upstreamOf } from '../../support/layer-kit.js';

describe('faults layer', () => {
  it('answers with the abort status in the app\'s API shape instead of calling in', async () => {
    const clock = new ManualClock();
    const upstream = upstreamOf(clock, {}, { upstreams: [{ name: 'primary', url: 'http://127.0.0.1:9' }], faults: [{ upstream: 'primary', percent: 100, abort: { status: 529 } }] });
    const inner = innerGiving(answer());
    const outcome = await faults({ clock, metrics, random: () => 0 })(inner)(requestTo(upstream), contextAt(clock, { dialect: anthropic }));
    assert.equal(inner.calls.length, 0);
    assert.equal(outcome.kind === 'answer' && outcome.failure, 'overloaded');
    assert.equal(outcome.kind === 'answer' && JSON.parse(outcome.body.toString()).error.type, 'overloaded_error');
  });

  it('delays the attempt on the clock, and a request that leaves meanwhile makes none', async () => {
    const clock = new ManualClock();
    const upstream = upstreamOf(clock, {}, { upstreams: [{ name: 'primary', url: 'http://127.0.0.1:9' }], faults: [{ upstream: 'primary', percent: 100, delay: '2s' }] });
    const inner = innerGiving(answer());
    const layer = faults({ clock, metrics, random: () => 0 })(inner);
    const delayed = layer(requestTo(upstream), contextAt(clock));
    clock.advance(1999);
    await settle();
    assert.equal(inner.calls.length, 0);
    clock.advance(1);
    assert.equal((await delayed).kind, 'answer');
    const ctx = contextAt(clock);
    const leaving = layer(requestTo(upstream), ctx);
    ctx.abort();
    assert.equal((await leaving).kind, 'cancelled');
    assert.equal(inner.calls.length, 1);
  });

  it('leaves attempts alone at 0 percent', async () => {
    const clock = new ManualClock();
    const upstream = upstreamOf(clock, {}, { upstreams: [{ name: 'primary', url: 'http://127.0.0.1:9' }], faults: [{ upstream: 'primary', percent: 0, abort: { status: 503 } }] });
    const inner = innerGiving(answer());
    await faults({ clock, metrics, random: () => 0 })(inner)(requestTo(upstream), contextAt(clock));
    assert.equal(inner.calls.length, 1);
  });
});

describe('degraded-request layer', () => {
  const settings = () => ({ maxTokens: 64, temperature: 0 });

  it('clamps the output cap and sets the temperature in degraded mode only', async () => {
    const clock = new ManualClock();
    const upstream = upstreamOf(clock);
    const inner = innerGiving(answer());
    const layer = degradedRequest(settings)(inner);
    const body = Buffer.from(JSON.stringify({ model: 'm', max_tokens: 1000, temperature: 1 }));
    await layer(requestTo(upstream, { body, maxTokens: 1000 }), contextAt(clock, { mode: 'normal' }));
    await layer(requestTo(upstream, { body, maxTokens: 1000 }), contextAt(clock, { mode: 'degraded' }));
    const [normal, degraded] = inner.calls.map((r) => JSON.parse(r.body!.toString()));
    assert.deepEqual([normal.max_tokens, normal.temperature], [1000, 1]);
    assert.deepEqual([degraded.max_tokens, degraded.temperature], [64, 0]);
    assert.equal(inner.calls[1]!.maxTokens, 64);
    assert.equal(inner.calls[1]!.headers['content-length'], String(inner.calls[1]!.body!.length));
  });

  it('speaks Ollama\'s options when the app does', async () => {
    const clock = new ManualClock();
    const inner = innerGiving(answer());
    const body = Buffer.from(JSON.stringify({ model: 'm', options: { num_predict: 500, top_k: 3 } }));
    await degradedRequest(settings)(inner)(requestTo(upstreamOf(clock), { body }), contextAt(clock, { mode: 'degraded', dialect: ollamaChat }));
    assert.deepEqual(JSON.parse(inner.calls[0]!.body!.toString()).options, { num_predict: 64, top_k: 3, temperature: 0 });
  });
});
