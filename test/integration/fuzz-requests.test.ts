/**
 * Fuzzing the app side over real sockets: fast-check sends generated
 * requests (method, a path under a known or unknown upstream with odd
 * segments, x-breakwater-* headers, JSON and garbage bodies with odd model
 * values). Invariants: every request gets an answer by the deadline, in a
 * 2xx, 4xx or 5xx the sidecar can explain (never a dropped connection), the
 * sidecar stays alive, and nothing is left in flight. A second run hides a
 * denied word in the places a model reads and in shapes meant to slip past
 * the guards (a message that starts with data:, documents, tool schemas'
 * property names, JSON escapes, deep nesting, media-looking holders): none
 * reaches the upstream. BREAKWATER_FUZZ_RUNS sets the number of requests
 * (default 40; `npm run fuzz` runs many more).
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { it } from 'node:test';
import fc from 'fast-check';
import { startMock, startRig } from '../support/harness.js';

const RUNS = Number(process.env.BREAKWATER_FUZZ_RUNS ?? 40);

const segment = fc.oneof(fc.constantFrom('v1', 'chat', 'completions', 'messages', 'api', '..', '.', '%2e%2e', '%00', '', '\u00e9', 'x'.repeat(300)), fc.webSegment());
const path = fc.tuple(fc.constantFrom('primary', 'nope', ''), fc.array(segment, { maxLength: 5 }), fc.option(fc.webQueryParameters(), { nil: undefined })).map(
  ([upstream, segments, query]) => `/${upstream}/${segments.map((s) => encodeURI(s)).join('/')}${query === undefined ? '' : `?${query}`}`,
);
const model = fc.oneof(fc.string({ maxLength: 40 }), fc.string({ unit: 'grapheme', maxLength: 20 }), fc.constant('\r\nx-injected: 1'), fc.constant('m'.repeat(5000)), fc.integer());
const body = fc.oneof(
  fc.record({ model, stream: fc.boolean(), max_tokens: fc.oneof(fc.integer(), fc.constant(1e300)), messages: fc.constant([{ role: 'user', content: 'hi' }]) }).map((o) => JSON.stringify(o)),
  fc.string({ maxLength: 200 }),
  fc.constant(`{"model":"m","messages":${'['.repeat(20_000)}${']'.repeat(20_000)}}`),
);
const headers = fc.record(
  {
    'x-breakwater-priority': fc.constantFrom('critical', 'normal', 'batch', 'vip', ''),
    'x-breakwater-timeout': fc.oneof(fc.constantFrom('500ms', '1s', '0ms', '1000h', 'soon', '9'.repeat(5000)), fc.stringMatching(/^[0-9a-z.]{0,12}$/)),
  },
  { requiredKeys: [] },
);

function send(base: string, method: string, target: string, extra: Record<string, string>, payload: string): Promise<number> {
  return new Promise((resolve) => {
    const { hostname, port } = new URL(base);
    // Framed for every method: Node's client sends a GET's body unframed, which no server could read.
    const headers = { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)), ...extra };
    const req = request({ hostname, port, method, path: target, headers }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode!));
      res.on('error', () => resolve(-1));
    });
    req.on('error', () => resolve(-1));
    req.end(payload);
  });
}

it(`answers every one of ${RUNS} generated app requests, and stays whole`, async (t) => {
  const mock = await startMock(t);
  const rig = await startRig(t, {
    upstreams: [{ name: 'primary', url: mock.url, timeouts: { total: '2s' }, retry: { attempts: 1 } }],
    priorities: { default: 'normal', classes: [{ name: 'critical', reserved: 25 }, { name: 'normal' }, { name: 'batch', maxShare: 20 }] },
  });
  const seen = new Map<number, number>();
  await fc.assert(
    fc.asyncProperty(fc.constantFrom('GET', 'POST', 'PUT', 'DELETE'), path, headers, body, async (method, target, extra, payload) => {
      const status = await Promise.race([send(rig.sidecar.dataUrl, method, target, extra, payload), new Promise<number>((resolve) => setTimeout(() => resolve(0), 5000))]);
      assert.notEqual(status, 0, `no answer for ${method} ${target.slice(0, 80)}`);
      assert.notEqual(status, -1, `the connection was dropped for ${method} ${target.slice(0, 80)}`);
      seen.set(status, (seen.get(status) ?? 0) + 1);
    }),
    { numRuns: RUNS },
  );
  const state = (await (await fetch(`${rig.sidecar.adminUrl}/status`)).json()) as { upstreams: { bulkhead: { inFlight: number } }[] };
  assert.equal(state.upstreams[0]!.bulkhead.inFlight, 0);
  t.diagnostic(`${RUNS} requests; answers by status: ${JSON.stringify(Object.fromEntries([...seen].sort()))}`);
});

/** Where a model reads text, each with the word put there. */
const WORD = 'forbidden';
const placed = (text: string) =>
  fc.constantFrom<(t: string) => object>(
    (t) => ({ messages: [{ role: 'user', content: t }] }),
    (t) => ({ messages: [{ role: 'user', content: `data: ${t}` }] }),
    (t) => ({ messages: [{ role: 'user', content: [{ type: 'text', text: t }] }] }),
    (t) => ({ messages: [{ role: 'user', content: [{ type: 'document', source: { type: 'text', media_type: 'text/plain', data: t } }] }] }),
    // Text in a media holder is read (pure base64 there is media, and exempt: see the unit tests).
    (t) => ({ messages: [{ role: 'user', content: [{ type: 'image', source: { type: 'base64', media_type: 'image/png', data: `${t} !` } }] }] }),
    (t) => ({ messages: [{ role: 'user', content: [{ type: 'input_audio', input_audio: { data: `${t} !`, format: 'wav' } }] }] }),
    (t) => ({ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: `data:text/plain,${t}` } }] }] }),
    (t) => ({ messages: [{ role: 'user', content: 'hi' }], system: t }),
    (t) => ({ messages: [{ role: 'user', content: 'hi' }], tools: [{ name: 'f', input_schema: { type: 'object', properties: { [t]: { type: 'string' } } } }] }),
    (t) => ({ messages: [{ role: 'user', content: 'hi' }], tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object', $defs: { [t]: {} } } } }] }),
    (t) => ({ messages: [{ role: 'user', content: 'hi' }], tools: [{ type: 'function', function: { name: 'f', description: t } }] }),
    (t) => ({ input: [{ role: 'user', content: [{ type: 'input_text', text: t }] }] }),
    (t) => ({ prompt: t }),
    (t) => ({ messages: [{ role: 'user', content: [[[[[[{ type: 'text', text: t }]]]]]] }] }),
    (t) => ({ messages: [{ role: 'tool', tool_call_id: 'c', content: JSON.stringify({ result: t }) }] }),
  ).map((place) => place(text));
/** The word as text, in other cases, split by JSON escapes (which JSON.parse joins again), or among other words. */
const disguised = fc.oneof(
  fc.constantFrom(WORD, WORD.toUpperCase(), 'ForBidden', `a ${WORD} b`, `x\n${WORD}`),
  fc.tuple(fc.string({ maxLength: 8 }), fc.string({ maxLength: 8 })).map(([a, b]) => `${a}${WORD}${b}`),
);

it(`blocks a denied word wherever a model reads it, in ${RUNS} generated requests, and lets none reach the upstream`, async (t) => {
  const mock = await startMock(t);
  const rig = await startRig(t, { upstreams: [{ name: 'primary', url: mock.url, guards: { deny: [{ name: 'word', pattern: WORD, ignoreCase: true }] }, retry: { attempts: 1 } }] });
  let blocked = 0;
  await fc.assert(
    fc.asyncProperty(disguised.chain(placed), fc.boolean(), fc.boolean(), async (shape, escaped, streamed) => {
      let payload = JSON.stringify({ model: 'm', stream: streamed, ...shape });
      // The same JSON with each letter of the word as a \u escape: what the model reads is the same.
      if (escaped) payload = payload.replace(/forbidden/gi, (w) => [...w].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`).join(''));
      const status = await send(rig.sidecar.dataUrl, 'POST', '/primary/v1/chat/completions', {}, payload);
      assert.equal(status, 400, `not blocked: ${payload.slice(0, 300)}`);
      blocked++;
    }),
    { numRuns: RUNS },
  );
  for (const r of mock.requests) assert.ok(!/forbidden/i.test(JSON.stringify(r.body)), 'a denied word reached the upstream');
  assert.equal(mock.requests.length, 0);
  t.diagnostic(`${blocked} requests blocked, ${mock.requests.length} reached the upstream`);
});
