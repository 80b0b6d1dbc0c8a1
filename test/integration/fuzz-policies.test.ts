/**
 * Fuzzing policies: fast-check writes policies from the schema's own ranges
 * (durations from 0 ms to the schema's 596 h, sizes, counts, priority classes, cache
 * bounds, answer limits). Each one the validator accepts is applied to a
 * running sidecar: applying never throws or kills it (a config that cannot
 * be applied is rejected, the last good one stays), and a request through it,
 * capped at 2 s by x-breakwater-timeout, is answered by then whatever the
 * policy says. BREAKWATER_FUZZ_RUNS sets the number (default 40).
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import fc from 'fast-check';
import { validatePolicy } from '../../api/index.js';
import { loadPolicyText } from '../../sidecar/config/policy-file.js';
import { chat, post, startMock, startRig } from '../support/harness.js';

const RUNS = Number(process.env.BREAKWATER_FUZZ_RUNS ?? 40);

/** Up to 596h (the schema's maximum) in each unit. */
const duration = fc.oneof(
  ...(
    [
      ['ms', 99_999],
      ['s', 99_999],
      ['m', 35_760],
      ['h', 596],
    ] as const
  ).map(([unit, max]) => fc.integer({ min: 0, max }).map((n) => `${n}${unit}`)),
);
/** Two durations, the first no longer than the second (base ≤ max, openFor ≤ maxOpenFor), so most policies are valid. */
const ordered = fc.tuple(fc.integer({ min: 0, max: 99_999_999 }), fc.integer({ min: 0, max: 99_999_999 })).map(([a, b]) => [`${Math.min(a, b)}ms`, `${Math.max(a, b)}ms`] as const);
const size = fc.tuple(fc.integer({ min: 0, max: 4096 }), fc.constantFrom('', 'Ki', 'Mi', 'Gi')).map(([n, unit]) => `${n}${unit}`);
const settings = fc.record(
  {
    timeouts: fc.record({ total: duration, attempt: duration, firstByte: duration, streamIdle: duration, perOutputToken: duration }, { requiredKeys: [] }),
    retry: fc.record(
      {
        attempts: fc.integer({ min: 1, max: 10 }),
        backoff: fc
          .tuple(ordered, fc.integer({ min: 1, max: 10 }), fc.constantFrom('full', 'equal', 'decorrelated', 'none'))
          .map(([[base, max], multiplier, jitter]) => ({ base, max, multiplier, jitter })),
        maxRetryAfter: duration,
        maxBodyBytes: size,
      },
      { requiredKeys: [] },
    ),
    circuitBreaker: fc.record(
      {
        scope: fc.constantFrom('upstream', 'model'),
        consecutiveFailures: fc.integer({ min: 0, max: 1000 }),
        openFor: ordered.map(([openFor]) => openFor),
        halfOpen: fc.record({ maxProbes: fc.integer({ min: 1, max: 100 }), successesToClose: fc.integer({ min: 1, max: 100 }) }),
      },
      { requiredKeys: [] },
    ),
    bulkhead: fc.record({ maxConcurrent: fc.integer({ min: 1, max: 10_000 }), maxQueue: fc.integer({ min: 0, max: 100_000 }), queueTimeout: duration }, { requiredKeys: [] }),
  },
  { requiredKeys: [] },
);
const spec = fc.record({
  upstream: settings,
  limits: fc.record({ maxAnswerBytes: size, maxStreamHeadBytes: size }, { requiredKeys: [] }),
  rateLimit: fc.record({ requestsPerMinute: fc.constantFrom(0, 600, 100_000), tokensPerMinute: fc.constantFrom(0, 1_000_000) }),
  cache: fc.record({ ttl: duration, maxEntries: fc.integer({ min: 0, max: 100_000 }), maxBytes: size, serveFresh: fc.boolean() }, { requiredKeys: [] }),
  classes: fc.uniqueArray(fc.record({ name: fc.constantFrom('a', 'b', 'c', 'd'), reserved: fc.integer({ min: 0, max: 33 }), maxShare: fc.integer({ min: 1, max: 100 }) }), {
    minLength: 1,
    maxLength: 4,
    selector: (c) => c.name,
  }),
});

it(`applies every one of ${RUNS} generated valid policies without dying, and still answers`, async (t) => {
  const mock = await startMock(t);
  const rig = await startRig(t, { upstreams: [{ name: 'primary', url: mock.url }] });
  let valid = 0;
  let rejected = 0;
  await fc.assert(
    fc.asyncProperty(spec, async (s) => {
      const policy = {
        upstreams: [{ name: 'primary', url: mock.url, ...s.upstream, limits: s.limits, rateLimit: s.rateLimit, fallback: [{ static: { message: 'busy' } }] }],
        cache: s.cache,
        priorities: { default: s.classes[0]!.name, classes: s.classes },
      };
      if (!validatePolicy(policy).ok) return;
      valid++;
      const loaded = loadPolicyText(JSON.stringify(policy), 'fuzzed policy');
      assert.ok(loaded.ok, loaded.ok ? '' : loaded.error);
      const applied = rig.sidecar.apply(loaded.config);
      if (!applied.ok) rejected++;
      // The app caps the request at 2 s: whatever the policy says (firstByte 0s, eight retries...), the answer comes by then.
      const answer = await Promise.race([post(rig.url('/primary/v1/chat/completions'), chat(), { 'x-breakwater-timeout': '2s' }), new Promise<undefined>((r) => setTimeout(r, 5000))]);
      assert.ok(answer, `no answer within 5 s of a 2 s deadline under ${JSON.stringify(policy).slice(0, 400)}`);
      assert.ok([200, 400, 429, 502, 503, 504].includes(answer.status), `status ${answer.status}`);
    }),
    { numRuns: RUNS, endOnFailure: true },
  );
  t.diagnostic(`${RUNS} policies generated, ${valid} valid and applied (${rejected} rejected at apply)`);
  assert.ok((await fetch(`${rig.sidecar.adminUrl}/healthz`)).ok);
});
