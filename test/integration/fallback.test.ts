/** Fallback chains: other upstreams (with their own model and key), the cache tier and the static tier. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import OpenAI from 'openai';
import { chat, post, startMock, startRig } from '../support/harness.js';
import { freePort } from '../support/ports.js';

const messages = [{ role: 'user' as const, content: 'hi' }];
const fast = { backoff: { base: '1ms', max: '5ms' } };

describe('fallback chains', () => {
  it('falls back from a primary that is down to a secondary, with the model rewritten and the secondary\'s own key', async (t) => {
    const secondary = await startMock(t);
    process.env.BW_TEST_SECONDARY_KEY = 'sk-secondary';
    t.after(() => delete process.env.BW_TEST_SECONDARY_KEY);
    const rig = await startRig(t, {
      upstreams: [
        { name: 'primary', url: `http://127.0.0.1:${await freePort()}`, retry: { attempts: 2, ...fast }, fallback: [{ upstream: 'secondary', model: 'llama3.1:8b', when: ['unavailable'] }] },
        { name: 'secondary', url: secondary.url, auth: { env: 'BW_TEST_SECONDARY_KEY' } },
      ],
    });
    const r = await post(rig.url('/primary/v1/chat/completions'), chat({ model: 'gpt-4o' }), { authorization: 'Bearer sk-app-key' });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('x-breakwater-fallback'), 'secondary');
    assert.equal(r.headers.get('x-breakwater-upstream'), 'secondary');
    assert.equal(r.headers.get('x-breakwater-attempts'), '3', 'two on the primary, one on the secondary');
    assert.equal(secondary.requests[0]!.body.model, 'llama3.1:8b');
    assert.equal(secondary.requests[0]!.headers.authorization, 'Bearer sk-secondary', 'the app\'s key never reaches another provider');
    assert.equal(await rig.metric('breakwater_fallbacks_total', { tier: 'secondary' }), 1);
  });

  it('gives the primary\'s bulkhead slot back before trying the next tier', async (t) => {
    const secondary = await startMock(t);
    secondary.defaultBehavior = { kind: 'ok', delayMs: 400 };
    const rig = await startRig(t, {
      upstreams: [
        { name: 'primary', url: `http://127.0.0.1:${await freePort()}`, retry: { attempts: 1 }, bulkhead: { maxConcurrent: 1 }, fallback: [{ upstream: 'secondary' }] },
        { name: 'secondary', url: secondary.url },
      ],
    });
    const pending = post(rig.url('/primary/v1/chat/completions'), chat());
    await new Promise((r) => setTimeout(r, 200)); // the primary has failed; the secondary is answering
    const status = (await (await fetch(`${rig.sidecar.adminUrl}/status`)).json()) as { upstreams: { name: string; bulkhead: { inFlight: number } }[] };
    assert.deepEqual(status.upstreams.map((u) => [u.name, u.bulkhead.inFlight]), [['primary', 0], ['secondary', 1]]);
    assert.equal((await pending).status, 200);
  });

  it('sends a context-length error from each API to the larger-context tier, and nothing else there', async (t) => {
    const small = await startMock(t);
    const large = await startMock(t);
    const rig = await startRig(t, {
      upstreams: [
        { name: 'small', url: small.url, retry: fast, fallback: [{ upstream: 'large', model: 'big-context', when: ['context-length'] }] },
        { name: 'large', url: large.url },
      ],
    });
    const bodies = [
      '{"error":{"message":"This model\'s maximum context length is 8192 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}',
      '{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 210000 tokens > 200000 maximum"}}',
      '{"object":"error","message":"This model\'s maximum context length is 4096 tokens. However, you requested 5000 tokens.","type":"BadRequestError","param":null,"code":400}',
      '{"error":{"code":400,"message":"the request exceeds the available context size, try increasing it","type":"exceed_context_size_error"}}',
    ];
    for (const body of bodies) {
      small.enqueue({ kind: 'status', status: 400, body });
      const r = await post(rig.url('/small/v1/chat/completions'), chat());
      assert.equal(r.status, 200, body);
      assert.equal(r.headers.get('x-breakwater-fallback'), 'large');
    }
    assert.deepEqual(large.requests.map((r) => r.body.model), ['big-context', 'big-context', 'big-context', 'big-context']);
    small.enqueue({ kind: 'status', status: 400, body: '{"error":{"message":"bad role","type":"invalid_request_error"}}' });
    assert.equal((await post(rig.url('/small/v1/chat/completions'), chat())).status, 400, 'an ordinary 400 is not sent to the larger model');
    small.defaultBehavior = { kind: 'status', status: 503 };
    const overloaded = await post(rig.url('/small/v1/chat/completions'), chat());
    assert.equal(overloaded.status, 503, 'when: [context-length] does not take overload');
    assert.equal(large.requests.length, 4);
  });

  it('spends one attempt on an upstream that never answers when a fallback upstream exists, and retries it when none does', async (t) => {
    const silent = await startMock(t);
    silent.defaultBehavior = { kind: 'hang' };
    const other = await startMock(t);
    const primary = { name: 'primary', url: silent.url, timeouts: { firstByte: '300ms' }, retry: { attempts: 3, ...fast } };
    const withFallback = await startRig(t, { upstreams: [{ ...primary, fallback: [{ upstream: 'other' }] }, { name: 'other', url: other.url }] });
    const answered = await post(withFallback.url('/primary/v1/chat/completions'), chat());
    assert.equal(answered.status, 200);
    assert.equal(answered.headers.get('x-breakwater-fallback'), 'other');
    assert.equal(silent.requests.length, 1, 'one attempt on the silent route');
    assert.equal(answered.headers.get('x-breakwater-attempts'), '2');

    const alone = await startRig(t, { upstreams: [primary] });
    assert.equal((await post(alone.url('/primary/v1/chat/completions'), chat())).status, 504);
    assert.equal(silent.requests.length, 1 + 3, 'without a fallback, the timeout is retried as retry.on says');
  });

  it('does not route a content-filter refusal to another model unless a tier names content-filter', async (t) => {
    const refusal = JSON.stringify({ error: { message: 'The response was filtered due to the prompt triggering content management policy.', type: 'invalid_request_error', code: 'content_filter' } });
    const primary = await startMock(t);
    primary.defaultBehavior = { kind: 'status', status: 400, body: refusal };
    const other = await startMock(t);
    const policy = (when?: string[]) => ({
      upstreams: [
        { name: 'primary', url: primary.url, fallback: [{ upstream: 'other', ...(when ? { when } : {}) }] },
        { name: 'other', url: other.url },
      ],
    });
    const byDefault = await startRig(t, policy());
    const refused = await post(byDefault.url('/primary/v1/chat/completions'), chat());
    assert.equal(refused.status, 400);
    assert.equal(refused.json().error.code, 'content_filter', 'the provider\'s reason reaches the app');
    assert.equal(primary.requests.length, 1, 'one attempt');
    assert.equal(other.requests.length, 0, 'not routed around the filter');

    const optedIn = await startRig(t, policy(['content-filter']));
    assert.equal((await post(optedIn.url('/primary/v1/chat/completions'), chat())).status, 200);
    assert.equal(other.requests.length, 1, 'routed when the policy says so');
  });

  it('answers from the cache for a repeated request and with the static message for a new one, both readable by the SDK, plain and streamed', async (t) => {
    const primary = await startMock(t);
    const secondary = await startMock(t);
    const rig = await startRig(t, {
      upstreams: [
        {
          name: 'primary',
          url: primary.url,
          retry: { attempts: 1 },
          circuitBreaker: { consecutiveFailures: 0 },
          fallback: [{ upstream: 'secondary' }, { cache: {} }, { static: { message: 'The assistant is busy; please try again shortly.' } }],
        },
        { name: 'secondary', url: secondary.url, retry: { attempts: 1 }, circuitBreaker: { consecutiveFailures: 0 } },
      ],
    });
    const openai = new OpenAI({ apiKey: 'sk-test', baseURL: rig.url('/primary/v1'), maxRetries: 0 });
    primary.enqueue({ kind: 'ok', text: 'Paris is the capital of France.' });
    const fresh = await openai.chat.completions.create({ model: 'gpt-test', messages: [{ role: 'user', content: 'capital of France?' }] });
    assert.equal(fresh.choices[0]!.message.content, 'Paris is the capital of France.');

    primary.defaultBehavior = { kind: 'status', status: 500 };
    secondary.defaultBehavior = { kind: 'reset' };
    const { data: cached, response } = await openai.chat.completions.create({ model: 'gpt-test', messages: [{ role: 'user', content: 'capital of France?' }] }).withResponse();
    assert.equal(cached.choices[0]!.message.content, 'Paris is the capital of France.');
    assert.equal(response.headers.get('x-breakwater-fallback'), 'cache');
    assert.equal(response.headers.get('x-breakwater-cache'), 'hit');
    let streamed = '';
    for await (const chunk of await openai.chat.completions.create({ model: 'gpt-test', messages: [{ role: 'user', content: 'capital of France?' }], stream: true })) {
      streamed += chunk.choices[0]?.delta.content ?? '';
    }
    assert.equal(streamed, 'Paris is the capital of France.', 'a streaming request is answered from the cached plain answer as a stream');

    const { data: degraded, response: degradedResponse } = await openai.chat.completions.create({ model: 'gpt-test', messages }).withResponse();
    assert.equal(degraded.choices[0]!.message.content, 'The assistant is busy; please try again shortly.');
    assert.equal(degradedResponse.headers.get('x-breakwater-degraded'), 'true');
    assert.equal(degradedResponse.headers.get('x-breakwater-fallback'), 'static');
    let staticStream = '';
    for await (const chunk of await openai.chat.completions.create({ model: 'gpt-test', messages, stream: true })) staticStream += chunk.choices[0]?.delta.content ?? '';
    assert.equal(staticStream, 'The assistant is busy; please try again shortly.');
    assert.equal(await rig.metric('breakwater_requests_total', { outcome: 'degraded' }), 2);
  });

  it('answers Anthropic and Ollama apps from the static tier in their own shapes', async (t) => {
    const rig = await startRig(t, {
      upstreams: [
        // Port 9 (discard) is never served here: a port freePort() found free may be another test's by the time it is called.
        { name: 'claude', url: 'http://127.0.0.1:9', api: 'anthropic', retry: { attempts: 1 }, fallback: [{ static: { message: 'busy' } }] },
        { name: 'ollama', url: 'http://127.0.0.1:9', api: 'ollama', retry: { attempts: 1 }, fallback: [{ static: { message: 'busy' } }] },
      ],
    });
    const claude = await post(rig.url('/claude/v1/messages'), JSON.stringify({ model: 'claude-x', max_tokens: 10, messages }));
    assert.deepEqual(claude.json().content, [{ type: 'text', text: 'busy' }]);
    const ollama = await post(rig.url('/ollama/api/chat'), JSON.stringify({ model: 'llama3', messages }));
    const lines = ollama.text.trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(lines[0].message.content, 'busy', 'Ollama streams by default');
    assert.equal(lines.at(-1).done, true);
  });

  it('treats unusable 200s as invalid-response: retried, sent to the next tier, and counted by the breaker', async (t) => {
    const primary = await startMock(t);
    const secondary = await startMock(t);
    const completion = (content: string) => JSON.stringify({ id: 'x', object: 'chat.completion', model: 'm', choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }] });
    const rig = await startRig(t, {
      upstreams: [
        {
          name: 'primary',
          url: primary.url,
          retry: { attempts: 2, on: ['invalid-response', 'server-error'], ...fast },
          circuitBreaker: { consecutiveFailures: 3 },
          fallback: [{ upstream: 'secondary', when: ['invalid-response'] }],
        },
        { name: 'secondary', url: secondary.url },
      ],
    });
    const jsonRequest = chat({ response_format: { type: 'json_object' } });
    primary.enqueue({ kind: 'status', status: 200, body: completion('Sure! Here it is: {"city": "Paris"}') }, { kind: 'status', status: 200, body: completion('{"city": "Paris"}') });
    const retried = await post(rig.url('/primary/v1/chat/completions'), jsonRequest);
    assert.equal(retried.headers.get('x-breakwater-attempts'), '2');
    assert.equal(JSON.parse(retried.json().choices[0].message.content).city, 'Paris');
    primary.defaultBehavior = { kind: 'status', status: 200, body: completion('') };
    const fellBack = await post(rig.url('/primary/v1/chat/completions'), chat());
    assert.equal(fellBack.headers.get('x-breakwater-fallback'), 'secondary');
    assert.equal(fellBack.json().choices[0].message.content, 'Hello from the Breakwater mock upstream.');
    assert.equal(await rig.metric('breakwater_upstream_attempts_total', { upstream: 'primary', class: 'invalid-response' }), 3);
    // The first request's valid retry reset the run; this one's first attempt is the third invalid answer in a row.
    assert.equal((await post(rig.url('/primary/v1/chat/completions'), chat())).headers.get('x-breakwater-fallback'), 'secondary');
    assert.equal(await rig.metric('breakwater_circuit_breaker_state', { upstream: 'primary', state: 'open' }), 1, 'three invalid answers in a row opened the breaker');
  });

  it('injects the policy\'s faults into attempts, and the chain handles them like real failures', async (t) => {
    const primary = await startMock(t);
    const rig = await startRig(t, {
      upstreams: [{ name: 'primary', url: primary.url, retry: { attempts: 2, ...fast }, fallback: [{ static: { message: 'busy' } }] }],
      faults: [{ upstream: 'primary', percent: 100, abort: { status: 503 } }],
    });
    const aborted = await post(rig.url('/primary/v1/chat/completions'), chat());
    assert.equal(aborted.headers.get('x-breakwater-fallback'), 'static');
    assert.equal(aborted.headers.get('x-breakwater-attempts'), '2', 'each attempt was faulted, then retried');
    assert.equal(primary.requests.length, 0, 'an aborted attempt never reaches the upstream');
    assert.equal(await rig.metric('breakwater_faults_injected_total', { kind: 'abort' }), 2);

    const delayed = await startRig(t, { upstreams: [{ name: 'primary', url: primary.url }], faults: [{ upstream: 'primary', percent: 100, delay: '250ms' }] });
    const slow = await post(delayed.url('/primary/v1/chat/completions'), chat());
    assert.equal(slow.status, 200);
    assert.ok(slow.ms >= 250, `answered after ${slow.ms} ms`);
    assert.equal(primary.requests.length, 1);
  });

  it('degrades under errors (max_tokens clamped, temperature set), and in emergency answers from the listed tiers without calling upstreams', async (t) => {
    const primary = await startMock(t);
    const rig = await startRig(t, {
      upstreams: [{ name: 'primary', url: primary.url, retry: { attempts: 1 }, circuitBreaker: { consecutiveFailures: 0 }, fallback: [{ static: { message: 'busy' } }] }],
      degradation: { window: '30s', degraded: { errorRate: 10, maxTokens: 16, temperature: 0 }, emergency: { errorRate: 60, serve: ['static'] } },
    });
    const send = () => post(rig.url('/primary/v1/chat/completions'), chat({ max_tokens: 500, temperature: 0.9 }));
    // 20 requests, 3 failing (15%): degraded from then on.
    for (let i = 0; i < 20; i++) {
      if (i % 7 === 6) primary.enqueue({ kind: 'status', status: 500 });
      await send();
    }
    const degraded = await send();
    assert.equal(degraded.headers.get('x-breakwater-mode'), 'degraded');
    assert.equal(primary.requests.at(-1)!.body.max_tokens, 16);
    assert.equal(primary.requests.at(-1)!.body.temperature, 0);
    // Everything fails: past 60% the sidecar answers from the static tier alone.
    primary.defaultBehavior = { kind: 'status', status: 500 };
    for (let i = 0; i < 60; i++) await send();
    const seen = primary.requests.length;
    const emergency = await send();
    assert.equal(emergency.headers.get('x-breakwater-mode'), 'emergency');
    assert.equal(emergency.headers.get('x-breakwater-fallback'), 'static');
    assert.equal(emergency.json().choices[0].message.content, 'busy');
    assert.equal(primary.requests.length, seen, 'no upstream call in emergency mode');
    const status = (await (await fetch(`${rig.sidecar.adminUrl}/status`)).json()) as { mode: string };
    assert.equal(status.mode, 'emergency');
    assert.equal(await rig.metric('breakwater_degradation_mode', { mode: 'emergency' }), 1);
  });

  it('holds requests over the client-side rate limit in the queue, then answers 429 with Retry-After, which a fallback can take', async (t) => {
    const primary = await startMock(t);
    const secondary = await startMock(t);
    const rig = await startRig(t, {
      upstreams: [
        { name: 'smooth', url: primary.url, rateLimit: { requestsPerMinute: 60 }, bulkhead: { queueTimeout: '3s' } },
        { name: 'strict', url: primary.url, rateLimit: { requestsPerMinute: 6 }, bulkhead: { queueTimeout: '1s' } },
        { name: 'guarded', url: primary.url, rateLimit: { requestsPerMinute: 6 }, fallback: [{ upstream: 'secondary', when: ['rate-limited'] }] },
        { name: 'secondary', url: secondary.url },
      ],
    });
    // 60/min: a burst of 10 goes at once, the 11th waits about a second for its turn.
    for (let i = 0; i < 10; i++) await post(rig.url('/smooth/v1/chat/completions'), chat());
    const waited = await post(rig.url('/smooth/v1/chat/completions'), chat());
    assert.equal(waited.status, 200);
    assert.ok(waited.ms >= 500, `the 11th request went after ${waited.ms} ms`);
    // 6/min: the second request would wait 10 s, more than its 1 s queue timeout.
    assert.equal((await post(rig.url('/strict/v1/chat/completions'), chat())).status, 200);
    const refused = await post(rig.url('/strict/v1/chat/completions'), chat());
    assert.equal(refused.status, 429);
    assert.equal(refused.json().error.code, 'rate_limited');
    assert.equal(refused.headers.get('retry-after'), '10');
    await post(rig.url('/guarded/v1/chat/completions'), chat());
    const diverted = await post(rig.url('/guarded/v1/chat/completions'), chat());
    assert.equal(diverted.status, 200);
    assert.equal(diverted.headers.get('x-breakwater-fallback'), 'secondary');
    assert.equal(primary.requests.length, 11 + 1 + 1, 'requests over the limit never reached the upstream');
  });

  it('serves 10,000 requests at ≥ 99.9% with the primary failing every time, and the open breaker keeps it to probes', async (t) => {
    const primary = await startMock(t);
    primary.defaultBehavior = { kind: 'status', status: 500 };
    const secondary = await startMock(t);
    const rig = await startRig(t, {
      upstreams: [
        { name: 'primary', url: primary.url, retry: { attempts: 2, ...fast }, circuitBreaker: { consecutiveFailures: 5, openFor: '500ms', maxOpenFor: '2s' }, bulkhead: { maxConcurrent: 64 }, fallback: [{ upstream: 'secondary', when: ['unavailable'] }] },
        { name: 'secondary', url: secondary.url, bulkhead: { maxConcurrent: 64 } },
      ],
    });
    const REQUESTS = 10_000;
    const CONCURRENCY = 32;
    let next = 0;
    let ok = 0;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next++ < REQUESTS) if ((await post(rig.url('/primary/v1/chat/completions'), chat())).status === 200) ok++;
      }),
    );
    const probes = await rig.metric('breakwater_circuit_breaker_transitions_total', { to: 'half-open' });
    t.diagnostic(`${ok} of ${REQUESTS} succeeded; the primary saw ${primary.requests.length} requests, with ${probes} half-open periods`);
    assert.ok(ok / REQUESTS >= 0.999, `success rate ${ok / REQUESTS}`);
    // Before the breaker first opened: 5 failures in a row, plus what was already in flight (2 attempts each).
    assert.ok(primary.requests.length <= 5 + CONCURRENCY * 2 + probes, `the primary saw ${primary.requests.length} requests`);
  });
});
