/**
 * The default policy with one fallback tier, against upstreams that fail in
 * every LLM-shaped way, read through the official SDKs. Each case runs its
 * own sidecar process and its own deterministic model servers (a primary and
 * a fallback that answers with its own model), all at once: the slowest
 * cases wait out the default timeouts (a silent provider costs the 60 s
 * first-byte timeout once). In each, the app gets the complete canonical
 * answer unless the case says otherwise, and the model servers' call logs
 * show how many attempts each route cost, and when.
 */
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { stringify } from 'yaml';
import { CANONICAL, startModelUpstream, type Fault, type ModelUpstream, type ModelUpstreamOptions } from '../support/model-upstream.js';
import { spawnSidecar, type SidecarProcess } from '../support/sidecar-process.js';

const FALLBACK_MODEL = 'large-context-model';

interface Setup {
  sidecar: SidecarProcess;
  primary: ModelUpstream;
  backup: ModelUpstream;
}

/** A sidecar on the default policy: `primary` (with `primaryExtra` settings, if any) falling back to `backup` with another model. */
async function setup(t: TestContext, primary: ModelUpstreamOptions, backup: ModelUpstreamOptions = {}, primaryExtra: object = {}, api: 'openai' | 'anthropic' = 'openai'): Promise<Setup> {
  const [p, b] = await Promise.all([startModelUpstream(t, primary), startModelUpstream(t, backup)]);
  const policy = {
    upstreams: [
      { name: 'primary', url: p.url, api, fallback: [{ upstream: 'backup', model: FALLBACK_MODEL }], ...primaryExtra },
      { name: 'backup', url: b.url, api },
    ],
  };
  return { sidecar: await spawnSidecar(t, stringify(policy)), primary: p, backup: b };
}

/** Faults for the first `n` calls, then none. */
const first = (n: number, fault: Fault) => (call: { n: number }) => (call.n <= n ? fault : undefined);
const always = (fault: Fault) => () => fault;

interface Answer {
  text: string;
  model: string;
  usage: OpenAI.CompletionUsage | undefined;
  ms: number;
}

/** Streams a chat completion through the sidecar with the OpenAI SDK (asking for usage), as an app would. */
async function ask({ sidecar }: Setup): Promise<Answer> {
  const client = new OpenAI({ apiKey: 'sk-app', baseURL: `${sidecar.dataUrl}/primary/v1`, maxRetries: 0, timeout: 150_000 });
  const started = Date.now();
  const stream = await client.chat.completions.create({ model: 'small-model', messages: [{ role: 'user', content: 'count to 60' }], stream: true, temperature: 0, stream_options: { include_usage: true } });
  const answer: Answer = { text: '', model: '', usage: undefined, ms: 0 };
  for await (const chunk of stream) {
    answer.text += chunk.choices[0]?.delta.content ?? '';
    answer.model = chunk.model || answer.model;
    answer.usage = chunk.usage ?? answer.usage;
  }
  answer.ms = Date.now() - started;
  return answer;
}

const fromPrimary = (a: Answer) => a.text === CANONICAL && a.model === 'small-model';
const fromBackup = (a: Answer) => a.text === CANONICAL && a.model === FALLBACK_MODEL;

describe('the default policy with one fallback tier, through the SDKs', { concurrency: true }, () => {
  it('429 with Retry-After: 2 once: waits 2 s with no request inside the wait, then succeeds on the primary', async (t) => {
    const s = await setup(t, { fault: first(1, { status: 429, headers: { 'retry-after': '2' } }) });
    const a = await ask(s);
    assert.ok(fromPrimary(a), JSON.stringify(a));
    assert.equal(s.primary.calls.length, 2);
    assert.ok(s.primary.calls[1]!.at - s.primary.calls[0]!.at >= 2000, 'the retry came after the wait');
    assert.ok(a.ms >= 2000);
    assert.equal(s.backup.calls.length, 0);
  });

  it('persistent 429 without Retry-After: bounded attempts with backoff, then the fallback', async (t) => {
    const s = await setup(t, { fault: always({ status: 429 }) });
    const a = await ask(s);
    assert.ok(fromBackup(a), JSON.stringify(a));
    assert.equal(s.primary.calls.length, 3, 'retry.attempts');
    assert.equal(s.backup.calls.length, 1);
  });

  it('500 once: one retry on the same upstream', async (t) => {
    const s = await setup(t, { fault: first(1, { status: 500 }) });
    assert.ok(fromPrimary(await ask(s)));
    assert.equal(s.primary.calls.length, 2);
    assert.equal(s.backup.calls.length, 0);
  });

  it('persistent 503: at most 6 attempts, then the fallback', async (t) => {
    const s = await setup(t, { fault: always({ status: 503 }) });
    assert.ok(fromBackup(await ask(s)));
    assert.ok(s.primary.calls.length >= 2 && s.primary.calls.length <= 6, `${s.primary.calls.length} attempts`);
    assert.equal(s.backup.calls.length, 1);
  });

  it('a reset before the headers: retried', async (t) => {
    const s = await setup(t, { fault: first(1, { reset: 'before-headers' }) });
    assert.ok(fromPrimary(await ask(s)));
    assert.equal(s.primary.calls.length, 2);
  });

  it('a provider that never answers: the fallback answers well inside 100 s, after one attempt on the silent route', async (t) => {
    const s = await setup(t, { fault: always({ silent: true }) });
    const a = await ask(s);
    assert.ok(fromBackup(a), JSON.stringify(a));
    assert.ok(a.ms < 100_000, `${a.ms} ms`);
    assert.equal(s.primary.calls.length, 1);
  });

  it('a first token after 20 s: after 10 s (timeouts.fallbackHedge) the fallback is asked too, and its answer comes within 12 s', async (t) => {
    const s = await setup(t, { fault: first(1, { firstTokenAfterMs: 20_000 }) });
    const a = await ask(s);
    assert.ok(fromBackup(a), JSON.stringify(a));
    assert.ok(a.ms >= 10_000 && a.ms < 12_000, `${a.ms} ms`);
    assert.equal(s.primary.calls.length, 1);
    assert.equal(s.backup.calls.length, 1);
  });

  it('a first token after 20 s, with a 10 s first-token timeout in the policy: the fallback answers within 15 s', async (t) => {
    const s = await setup(t, { fault: first(1, { firstTokenAfterMs: 20_000 }) }, {}, { timeouts: { firstByte: '10s' } });
    const a = await ask(s);
    assert.ok(fromBackup(a), JSON.stringify(a));
    assert.ok(a.ms < 15_000, `${a.ms} ms`);
    assert.equal(s.primary.calls.length, 1);
  });

  it('a stream cut after 40 of 60 tokens: the complete answer, with usage', async (t) => {
    const s = await setup(t, { fault: first(1, { cutAfter: 40 }) });
    const a = await ask(s);
    assert.ok(fromPrimary(a), JSON.stringify(a));
    assert.equal(a.usage?.completion_tokens, 60, 'the usage of the stream that finished');
  });

  it('a stream that stalls after 20 tokens: the complete answer within 45 s, regenerated by the fallback (a stall is a timeout: not retried where a fallback takes it)', async (t) => {
    const s = await setup(t, { fault: first(1, { stallAfter: 20 }) });
    const a = await ask(s);
    assert.ok(fromBackup(a), JSON.stringify(a));
    assert.ok(a.ms < 45_000, `${a.ms} ms`);
    assert.equal(s.primary.calls.length, 1);
    assert.equal(s.backup.calls.length, 1);
  });

  it('one malformed event: no garbage reaches the app, which gets the whole answer from the fallback (invalid-response is not retried)', async (t) => {
    const s = await setup(t, { fault: first(1, { malformedAt: 30 }) });
    const a = await ask(s);
    assert.ok(!a.text.includes('garbage'));
    assert.ok(fromBackup(a), JSON.stringify(a));
    assert.equal(s.primary.calls.length, 1);
  });

  for (const how of ['end', 'reset', 'hold'] as const) {
    it(`no [DONE] after finish_reason: stop (the connection ${how === 'end' ? 'ends' : how === 'reset' ? 'resets' : 'stays open'}): success within 8 s, with usage`, async (t) => {
      const s = await setup(t, { fault: always({ noTerminator: how }) });
      const a = await ask(s);
      assert.ok(fromPrimary(a), JSON.stringify(a));
      assert.ok(a.ms < 8000, `${a.ms} ms`);
      assert.equal(a.usage?.completion_tokens, 60);
      assert.equal(s.primary.calls.length, 1);
    });
  }

  it('a context-length error: one attempt, then the larger-context tier', async (t) => {
    const body = JSON.stringify({ error: { message: "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.", type: 'invalid_request_error', param: 'messages', code: 'context_length_exceeded' } });
    const s = await setup(t, { fault: always({ status: 400, body }) });
    const a = await ask(s);
    assert.ok(fromBackup(a), JSON.stringify(a));
    assert.equal(s.primary.calls.length, 1);
    assert.equal(s.backup.calls[0]?.json.model, FALLBACK_MODEL);
  });

  it("a content-filter error: one attempt, and the provider's reason reaches the app; not routed to the fallback by default", async (t) => {
    const body = JSON.stringify({ error: { message: "The response was filtered due to the prompt triggering Azure OpenAI's content management policy.", type: null, param: 'prompt', code: 'content_filter', status: 400 } });
    const s = await setup(t, { fault: always({ status: 400, body }) });
    await assert.rejects(ask(s), (err: unknown) => err instanceof OpenAI.BadRequestError && /content management policy/.test(err.message));
    assert.equal(s.primary.calls.length, 1);
    assert.equal(s.backup.calls.length, 0);
  });

  it('anthropic: a stream cut, then a fallback that rejects prefill: the whole answer, regenerated and verified, never the prefill 400', async (t) => {
    const overloaded = JSON.stringify({ type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } });
    const s = await setup(t, { fault: (call) => (call.n === 1 ? { cutAfter: 40 } : { status: 529, body: overloaded }) }, { prefill: 'rejects' }, {}, 'anthropic');
    const client = new Anthropic({ apiKey: 'sk-ant-app', baseURL: `${s.sidecar.dataUrl}/primary`, maxRetries: 0 });
    const message = await client.messages.stream({ model: 'claude-small', max_tokens: 200, temperature: 0, messages: [{ role: 'user', content: 'count to 60' }] }).finalMessage();
    const [block] = message.content;
    assert.equal(message.content.length, 1);
    assert.equal(block?.type === 'text' ? block.text : undefined, CANONICAL);
    assert.equal(message.stop_reason, 'end_turn');
    const [asked, regenerated] = s.backup.calls;
    assert.equal(asked?.json.messages.at(-1).role, 'assistant', 'the fallback was asked to continue first');
    assert.equal(regenerated?.json.messages.at(-1).role, 'user', 'then sent the original request');
    assert.equal(s.backup.calls.length, 2);
  });

  it('a primary that returns 503 for 60 s, with a request every 4 s: every request served, few probes of the primary, back on it within 30 s', async (t) => {
    const outage = { start: Infinity, ms: 60_000 };
    const s = await setup(t, { fault: (call) => (call.at - outage.start < outage.ms ? { status: 503 } : undefined) });
    outage.start = Date.now();
    const served: { at: number; byPrimary: boolean }[] = [];
    for (let at = 0; at <= outage.ms + 36_000; at += 4000) {
      await new Promise((r) => setTimeout(r, Math.max(0, outage.start + at - Date.now())));
      const a = await ask(s);
      assert.ok(fromPrimary(a) || fromBackup(a), `request at ${at} ms: ${JSON.stringify(a)}`);
      served.push({ at: Date.now() - outage.start, byPrimary: fromPrimary(a) });
    }
    const probes = s.primary.calls.filter((c) => c.at - outage.start < outage.ms).length;
    assert.ok(probes <= 10, `${probes} primary attempts during the 60 s outage (${served.length} requests)`);
    const back = served.find((r) => r.at > outage.ms && r.byPrimary);
    assert.ok(back && back.at - outage.ms <= 30_000, `back on the primary ${back ? back.at - outage.ms : 'never'} ms after it healed`);
    assert.ok(served.filter((r) => r.at > (back?.at ?? Infinity)).every((r) => r.byPrimary), 'and stays there');
    t.diagnostic(`outage: ${probes} primary attempts for ${served.filter((r) => r.at < outage.ms).length} requests; back on the primary ${back!.at - outage.ms} ms after it healed`);
  });

  it('fallback accounting: the app sees the fallback tier\'s model and usage, streamed and plain', async (t) => {
    const s = await setup(t, { fault: always({ status: 503 }) });
    const streamed = await ask(s);
    assert.equal(streamed.model, FALLBACK_MODEL);
    assert.equal(streamed.usage?.completion_tokens, 60);
    const client = new OpenAI({ apiKey: 'sk-app', baseURL: `${s.sidecar.dataUrl}/primary/v1`, maxRetries: 0 });
    const plain = await client.chat.completions.create({ model: 'small-model', messages: [{ role: 'user', content: 'count to 60' }] });
    assert.equal(plain.model, FALLBACK_MODEL);
    assert.equal(plain.usage?.completion_tokens, 60);
    assert.equal(plain.choices[0]?.message.content, CANONICAL);
  });
});
