/**
 * The layers that shape or replace an attempt: injected faults (delay and
 * abort, in the app's API's error shape), degraded mode's request, and a
 * recovery's continuation request.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { anthropic } from '../../../sidecar/proxy/dialects/anthropic.js';
import { ollamaChat, ollamaGenerate } from '../../../sidecar/proxy/dialects/ollama.js';
import { openai } from '../../../sidecar/proxy/dialects/openai.js';
import { BodyBudget } from '../../../sidecar/proxy/inbound/body-budget.js';
import { continuation } from '../../../sidecar/proxy/layers/continuation.js';
import { degradedRequest } from '../../../sidecar/proxy/layers/degraded-request.js';
import { faults } from '../../../sidecar/proxy/layers/faults.js';
import type { ProxyRequest } from '../../../sidecar/proxy/handler.js';
import { DeliveredContent } from '../../../sidecar/resilience/stream-verifier.js';
import { answer, contextAt, DrivenStream, innerGiving, localFailure, ManualClock, metrics, requestTo, settle, streamOf, upstreamOf } from '../../support/layer-kit.js';

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
    await layer(requestTo(upstream, { body, maxTokens: 1000, mode: 'normal' }), contextAt(clock));
    await layer(requestTo(upstream, { body, maxTokens: 1000, mode: 'degraded' }), contextAt(clock));
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
    await degradedRequest(settings)(inner)(requestTo(upstreamOf(clock), { body, mode: 'degraded' }), contextAt(clock, { dialect: ollamaChat }));
    assert.deepEqual(JSON.parse(inner.calls[0]!.body!.toString()).options, { num_predict: 64, top_k: 3, temperature: 0 });
  });
});

describe('continuation layer', () => {
  const chat = (messages: object[]) => Buffer.from(JSON.stringify({ model: 'm', stream: true, messages }));
  const lastMessage = (body: Buffer | null) => JSON.parse(body!.toString()).messages.at(-1);
  /** What the app was sent before the break: `pieces` of content (text of one channel by default). */
  const deliveredOf = (...pieces: { channel: string; text: string }[]) => {
    const delivered = new DeliveredContent();
    for (const piece of pieces) delivered.add(piece);
    return delivered;
  };
  const setup = (api: string, continuationStyle?: string, delivered = deliveredOf({ channel: 'text', text: 'one ' }, { channel: 'text', text: 'two ' })) => {
    const clock = new ManualClock();
    const upstream = upstreamOf(clock, { api, ...(continuationStyle ? { streamRecovery: { continuation: continuationStyle } } : {}) });
    const resume = { delivered, broke: { upstream: 'primary', failure: 'reset' as const } };
    return { clock, upstream, req: requestTo(upstream, { stream: true, body: chat([{ role: 'user', content: 'count' }]), resume }) };
  };
  const carried = (req: ProxyRequest) => req.resume?.carried;

  it('asks an Anthropic tier to continue (trailing whitespace left out), and says how much the request carried', async () => {
    const { clock, req } = setup('anthropic');
    const inner = innerGiving(streamOf(new DrivenStream()));
    await continuation(inner)(req, contextAt(clock, { dialect: anthropic }));
    assert.deepEqual(lastMessage(inner.calls[0]!.body), { role: 'assistant', content: 'one two' });
    assert.equal(inner.calls[0]!.headers['content-length'], String(inner.calls[0]!.body!.length));
    assert.equal(carried(inner.calls[0]!), 'one two'.length);
    assert.equal(inner.calls[0]!.resume?.delivered, req.resume!.delivered, 'the break and what was delivered go with it');
    assert.equal(carried(req), undefined, "the app's request is left as it was");
  });

  it('appends to the app\'s own trailing assistant message instead of adding a second one', async () => {
    const { clock, req } = setup('anthropic');
    const inner = innerGiving(streamOf(new DrivenStream()));
    await continuation(inner)({ ...req, body: chat([{ role: 'user', content: 'json please' }, { role: 'assistant', content: '{' }]) }, contextAt(clock, { dialect: anthropic }));
    const messages = JSON.parse(inner.calls[0]!.body!.toString()).messages;
    assert.equal(messages.length, 2);
    assert.deepEqual(messages[1], { role: 'assistant', content: '{one two' });
  });

  for (const [what, refusal] of [
    ['a 400 (no prefill on this model)', answer(400, 'client-error', '{"type":"error","error":{"type":"invalid_request_error","message":"prefill not supported"}}')],
    ['a context-length error (the prompt grew)', answer(400, 'context-length')],
    ['a continuation that diverged (the model restarted the answer)', localFailure('diverged')],
  ] as const) {
    it(`sends the original request when the continuation is refused with ${what}; the refusal never comes out`, async () => {
      const { clock, req } = setup('anthropic');
      const regenerated = streamOf(new DrivenStream());
      const inner = innerGiving(refusal, regenerated);
      const outcome = await continuation(inner)(req, contextAt(clock, { dialect: anthropic }));
      assert.equal(inner.calls.length, 2);
      assert.equal(lastMessage(inner.calls[1]!.body).role, 'user');
      assert.equal(carried(inner.calls[0]!), 'one two'.length);
      assert.equal(carried(inner.calls[1]!), undefined, 'regenerated: the new stream is verified against all that was delivered');
      assert.equal(inner.calls[1]!.body, req.body);
      assert.equal(outcome, regenerated);
    });
  }

  it('passes other failures through (the fallback layer above decides)', async () => {
    const { clock, req } = setup('anthropic');
    const inner = innerGiving(answer(529, 'overloaded'));
    const outcome = await continuation(inner)(req, contextAt(clock, { dialect: anthropic }));
    assert.equal(inner.calls.length, 1);
    assert.equal(outcome.kind === 'answer' && outcome.failure, 'overloaded');
  });

  it('sends the original request where the tier cannot continue: OpenAI by default, continuation off, a body without messages, no memory left, content other than text', async () => {
    const cases = [
      { ...setup('openai'), dialect: openai, budget: Infinity },
      { ...setup('anthropic', 'off'), dialect: anthropic, budget: Infinity },
      { ...setup('ollama'), dialect: ollamaGenerate, budget: Infinity },
      { ...setup('anthropic'), dialect: anthropic, budget: 10 },
      { ...setup('anthropic', undefined, deliveredOf({ channel: 'block0.text', text: 'Let me look. ' }, { channel: 'block1.tool', text: 'search' })), dialect: anthropic, budget: Infinity },
      { ...setup('anthropic', undefined, deliveredOf({ channel: 'reasoning', text: 'Hmm.' })), dialect: anthropic, budget: Infinity },
    ];
    for (const { clock, req, dialect, budget } of cases) {
      const inner = innerGiving(streamOf(new DrivenStream()));
      const body = dialect === ollamaGenerate ? Buffer.from('{"model":"m","prompt":"count"}') : req.body;
      const outcome = await continuation(inner)({ ...req, body }, contextAt(clock, { dialect, memory: new BodyBudget(() => budget).lease() }));
      assert.equal(inner.calls[0]!.body, body, `${dialect.name}: the body as the app sent it`);
      assert.equal(carried(inner.calls[0]!), undefined);
      assert.equal(outcome.kind, 'stream');
    }
  });

  it('asks a vLLM tier (continue-final-message) with its flags', async () => {
    const { clock, req } = setup('openai', 'continue-final-message');
    const inner = innerGiving(streamOf(new DrivenStream()));
    await continuation(inner)(req, contextAt(clock));
    const sent = JSON.parse(inner.calls[0]!.body!.toString());
    assert.deepEqual([sent.continue_final_message, sent.add_generation_prompt, sent.messages.at(-1)], [true, false, { role: 'assistant', content: 'one two ' }]);
  });
});

