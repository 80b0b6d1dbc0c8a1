/**
 * OpenAI's Responses API through a real sidecar, as apps call it: the
 * official openai SDK (`responses.create`, plain and streamed, and
 * `responses.stream()`) and the Vercel AI SDK's default provider (which calls
 * the Responses API), against a provider written to the API's wire format
 * (test/support/responses-upstream.ts). A healthy stream ends at its terminal
 * event without an error and without tripping the breaker; an error event
 * before any text, a late first delta, a cut and `response.failed` are taken
 * up by the chain; the sidecar's own answers are readable by both SDKs.
 */
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { createOpenAI } from '@ai-sdk/openai';
import { generateText, streamText } from 'ai';
import OpenAI from 'openai';
import { stringify } from 'yaml';
import { RESPONSE_TEXT, RESPONSE_TOKENS, startResponsesUpstream, type ResponsesFault, type ResponsesUpstream } from '../support/responses-upstream.js';
import { spawnSidecar, type SidecarProcess } from '../support/sidecar-process.js';

const always = (fault: ResponsesFault) => () => fault;

interface Rig {
  sidecar: SidecarProcess;
  primary: ResponsesUpstream;
  backup: ResponsesUpstream;
  client: OpenAI;
}

/** The default policy with one fallback tier, whose credential is the policy's own; `extra`: more settings of the primary. */
async function rig(t: TestContext, primaryFault?: (call: { n: number }) => ResponsesFault | undefined, extra: object = {}, tiers?: object[]): Promise<Rig> {
  process.env.BW_TEST_BACKUP_KEY = 'sk-backup-from-policy';
  t.after(() => delete process.env.BW_TEST_BACKUP_KEY);
  const [primary, backup] = await Promise.all([startResponsesUpstream(t, primaryFault), startResponsesUpstream(t)]);
  const policy = {
    upstreams: [
      { name: 'primary', url: primary.url, fallback: tiers ?? [{ upstream: 'backup', model: 'backup-model' }], ...extra },
      { name: 'backup', url: backup.url, auth: { env: 'BW_TEST_BACKUP_KEY' } },
    ],
  };
  const sidecar = await spawnSidecar(t, stringify(policy));
  return { sidecar, primary, backup, client: new OpenAI({ apiKey: 'sk-app', baseURL: `${sidecar.dataUrl}/primary/v1`, maxRetries: 0 }) };
}

/** A streamed response through `responses.create`: the text, the event types and sequence numbers the app saw, and its error. */
async function streamed(client: OpenAI) {
  const seen = { text: '', types: [] as string[], sequences: [] as number[], error: undefined as unknown, response: undefined as OpenAI.Responses.Response | undefined };
  try {
    const stream = await client.responses.create({ model: 'app-model', input: 'count', stream: true });
    for await (const event of stream) {
      seen.types.push(event.type);
      seen.sequences.push(event.sequence_number);
      // The openai SDK hands a Responses stream's error event to the app as an event, as the API sends it.
      if (event.type === 'error') seen.error = new Error(`error event: ${event.message}`);
      if (event.type === 'response.output_text.delta') seen.text += event.delta;
      if (event.type === 'response.completed' || event.type === 'response.incomplete') seen.response = event.response;
    }
  } catch (err) {
    seen.error = err;
  }
  return seen;
}

const increasing = (numbers: number[]) => numbers.every((n, i) => i === 0 || n > numbers[i - 1]!);
const count = (types: string[], type: string) => types.filter((t) => t === type).length;

async function metrics(adminUrl: string): Promise<string> {
  return (await fetch(`${adminUrl}/metrics`)).text();
}

describe('the Responses API', { concurrency: true }, () => {
  it('20 streams in a row complete without an error event, the breaker stays closed, and a plain call gives output_text', async (t) => {
    const r = await rig(t);
    for (let i = 0; i < 20; i++) {
      const s = await streamed(r.client);
      assert.equal(s.error, undefined, `stream ${i}: ${String(s.error)}`);
      assert.equal(s.text, RESPONSE_TEXT);
      assert.equal(s.types.at(-1), 'response.completed');
      assert.ok(increasing(s.sequences));
    }
    const plain = await r.client.responses.create({ model: 'app-model', input: 'count' });
    assert.equal(plain.output_text, RESPONSE_TEXT);
    const final = await r.client.responses.stream({ model: 'app-model', input: 'count' }).finalResponse();
    assert.equal(final.output_text, RESPONSE_TEXT);
    const text = await metrics(r.sidecar.adminUrl);
    assert.match(text, /breakwater_circuit_breaker_state\{upstream="primary",model="[^"]*",state="closed"\} 1/);
    assert.doesNotMatch(text, /breakwater_circuit_breaker_state\{upstream="primary",[^}]*state="(open|half-open)"\} [1-9]/);
    assert.doesNotMatch(text, /breakwater_requests_total\{upstream="primary"[^}]*outcome="upstream_error"\}/);
    assert.equal(r.backup.calls.length, 0);
    // Usage from the terminal response object: 21 streams and one plain call, 30 output tokens each.
    assert.match(text, /breakwater_tokens_total\{upstream="primary",model="[^"]*",type="output"\} 660/);
  });

  it('response.incomplete (max_output_tokens) is a normal end', async (t) => {
    const r = await rig(t, always({ incompleteAfter: 10 }));
    const s = await streamed(r.client);
    assert.equal(s.error, undefined, String(s.error));
    assert.equal(s.text, RESPONSE_TOKENS.slice(0, 10).join(''));
    assert.equal(s.response?.status, 'incomplete');
    assert.equal(r.primary.calls.length, 1);
    assert.equal(r.backup.calls.length, 0);
  });

  it('an answer that ends before any text (a content filter\'s response.incomplete) is the answer: one request, no fallback', async (t) => {
    const r = await rig(t, always({ filtered: true }));
    const s = await streamed(r.client);
    assert.equal(s.error, undefined, String(s.error));
    assert.equal(s.text, '');
    assert.equal(s.response?.incomplete_details?.reason, 'content_filter');
    assert.equal(r.primary.calls.length, 1);
    assert.equal(r.backup.calls.length, 0);
  });

  it('an error event before any text goes to the fallback, with the fallback\'s credentials', async (t) => {
    const r = await rig(t, always({ errorBeforeText: true }));
    const s = await streamed(r.client);
    assert.equal(s.error, undefined, String(s.error));
    assert.equal(s.text, RESPONSE_TEXT);
    assert.equal(count(s.types, 'response.created'), 1, 'the app saw one response.created, the answering tier\'s');
    assert.equal(s.response?.model, 'backup-model');
    assert.equal(r.backup.calls.length, 1);
    assert.equal(r.backup.calls[0]!.headers.authorization, 'Bearer sk-backup-from-policy');
    assert.ok(r.primary.calls.every((c) => c.headers.authorization === 'Bearer sk-app'));
  });

  it('a first delta later than firstByte goes to the fallback before any event reaches the app', async (t) => {
    const r = await rig(t, always({ firstDeltaAfterMs: 5000 }), { timeouts: { firstByte: '500ms' } });
    const started = Date.now();
    const s = await streamed(r.client);
    assert.equal(s.error, undefined, String(s.error));
    assert.equal(s.text, RESPONSE_TEXT);
    assert.equal(count(s.types, 'response.created'), 1);
    assert.equal(s.response?.model, 'backup-model');
    assert.ok(Date.now() - started < 4000, `${Date.now() - started} ms`);
  });

  for (const [what, fault] of [
    ['a cut after 12 tokens', { cutAfter: 12 }],
    ['response.failed after 12 tokens', { failedAfter: 12 }],
  ] as const) {
    it(`${what}, on every attempt to the primary: the whole text, one response.created, one terminal event, increasing sequence numbers`, async (t) => {
      const r = await rig(t, always(fault));
      const s = await streamed(r.client);
      assert.equal(s.error, undefined, String(s.error));
      assert.equal(s.text, RESPONSE_TEXT);
      assert.equal(count(s.types, 'response.created'), 1);
      assert.equal(s.types.filter((type) => ['response.completed', 'response.incomplete', 'response.failed', 'error'].includes(type)).length, 1);
      assert.ok(increasing(s.sequences), s.sequences.join(','));
      assert.equal(r.backup.calls.length, 1);
      assert.match(await metrics(r.sidecar.adminUrl), /breakwater_stream_recoveries_total\{upstream="primary",strategy="regenerate",result="recovered"\} 1/);
    });
  }

  it('the static tier answers in the Responses shape: responses.create, responses.stream() and the AI SDK read it, plain and streamed', async (t) => {
    const r = await rig(t, () => ({ cutAfter: 0 }), { retry: { attempts: 1 } }, [{ static: { message: 'The service is busy; try again shortly.' } }]);
    const plain = await r.client.responses.create({ model: 'app-model', input: 'hi' });
    assert.equal(plain.output_text, 'The service is busy; try again shortly.');
    const final = await r.client.responses.stream({ model: 'app-model', input: 'hi' }).finalResponse();
    assert.equal(final.output_text, 'The service is busy; try again shortly.');
    const s = await streamed(r.client);
    assert.equal(s.text, 'The service is busy; try again shortly.');
    assert.ok(increasing(s.sequences));
    const provider = createOpenAI({ apiKey: 'sk-app', baseURL: `${r.sidecar.dataUrl}/primary/v1` });
    const generated = await generateText({ model: provider('app-model'), prompt: 'hi', maxRetries: 0 });
    assert.equal(generated.text, 'The service is busy; try again shortly.');
    const result = streamText({ model: provider('app-model'), prompt: 'hi', maxRetries: 0 });
    let text = '';
    for await (const piece of result.textStream) text += piece;
    assert.equal(text, 'The service is busy; try again shortly.');
  });

  it('the Vercel AI SDK\'s default provider (the Responses API) streams a whole answer through a stream cut on every primary attempt', async (t) => {
    const r = await rig(t, always({ cutAfter: 12 }));
    const provider = createOpenAI({ apiKey: 'sk-app', baseURL: `${r.sidecar.dataUrl}/primary/v1` });
    const result = streamText({ model: provider('app-model'), prompt: 'count', maxRetries: 0, onError: () => {} });
    let text = '';
    for await (const piece of result.textStream) text += piece;
    assert.equal(text, RESPONSE_TEXT);
    assert.equal((await result.usage).outputTokens, RESPONSE_TOKENS.length);
    assert.ok(r.primary.calls[0]!.json.stream === true && r.primary.calls[0]!.json.input !== undefined, 'the AI SDK called the Responses API');
  });
});
