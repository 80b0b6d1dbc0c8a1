/**
 * Fuzzing the app side over real sockets: fast-check sends generated
 * requests (method, a path under a known or unknown upstream with odd
 * segments, x-breakwater-* headers, JSON and garbage bodies with odd model
 * values). Invariants: every request gets an answer by the deadline, in a
 * 2xx, 4xx or 5xx the sidecar can explain (never a dropped connection), the
 * sidecar stays alive, and nothing is left in flight. BREAKWATER_FUZZ_RUNS
 * sets the number of requests (default 40).
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
