import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { BUILTIN_SETTINGS, formatProblems, mergeSettings, parseDuration, parseSize, validatePolicy } from '../../api/index.js';
import { DURATION_PATTERN, DURATION_TOO_LONG, INHERITED_DEFAULT, SettingsSchema } from '../../api/policy-schema.js';
import { MAX_DURATION } from '../../api/units.js';
import { generatedFiles } from '../../scripts/generated-files.js';
import { compileConfig } from '../../sidecar/config/compile-config.js';

const example = (name: string) => parse(readFileSync(new URL(`../../examples/policies/${name}`, import.meta.url), 'utf8'));
const problemsOf = (doc: unknown) => {
  const v = validatePolicy(doc);
  assert.equal(v.ok, false, 'expected the policy to be rejected');
  return v.ok ? '' : formatProblems(v.problems);
};

describe('units', () => {
  it('parses durations and sizes', () => {
    assert.equal(parseDuration('250ms'), 250);
    assert.equal(parseDuration('1m30s'), 90_000);
    assert.equal(parseDuration('1.5h'), 5_400_000);
    assert.throws(() => parseDuration('10'), /not a duration/);
    assert.throws(() => parseDuration('5s garbage'), /not a duration/);
    assert.equal(parseSize('10Mi'), 10 * 1024 * 1024);
    assert.equal(parseSize('64k'), 64_000);
    assert.equal(parseSize('512'), 512);
    assert.throws(() => parseSize('10MB'), /not a size/);
  });
});

describe('policy schema', () => {
  it('has the contract defaults for every inheritable setting', () => {
    assert.deepEqual(BUILTIN_SETTINGS.timeouts, { total: '120s', attempt: '120s', firstByte: '60s', streamIdle: '30s', connect: '5s', fallbackHedge: '10s', perOutputToken: '0ms' });
    assert.deepEqual(BUILTIN_SETTINGS.retry.backoff, { base: '250ms', max: '10s', multiplier: 2, jitter: 'full' });
    assert.equal(BUILTIN_SETTINGS.retry.attempts, 3);
    assert.deepEqual(BUILTIN_SETTINGS.retry.statusCodes, [429, 500, 502, 503, 504, 529]);
    assert.deepEqual(BUILTIN_SETTINGS.retry.budget, { ratio: 20, minPerSecond: 5, window: '10s' });
    assert.equal(BUILTIN_SETTINGS.retry.maxRetryAfter, '30s');
    assert.equal(BUILTIN_SETTINGS.retry.maxBodyBytes, '10Mi');
    assert.equal(BUILTIN_SETTINGS.circuitBreaker.scope, 'model');
    assert.deepEqual(BUILTIN_SETTINGS.circuitBreaker.halfOpen, { maxProbes: 1, successesToClose: 2 });
    assert.deepEqual(BUILTIN_SETTINGS.circuitBreaker.failOn, ['overloaded', 'server-error', 'timeout', 'connect-failure', 'reset', 'invalid-response']);
    assert.deepEqual(BUILTIN_SETTINGS.bulkhead, { mode: 'adaptive', maxConcurrent: 32, adaptive: { min: 4, initial: 32, max: 1024 }, maxQueue: 1024, queueTimeout: '5s', fairBy: { header: '' } });
  });

  it('gives every settings leaf a built-in default', () => {
    const walk = (schema: Record<string, unknown>, path: string): void => {
      if (INHERITED_DEFAULT in schema) return;
      const props = schema.properties as Record<string, Record<string, unknown>> | undefined;
      assert.ok(props, `${path} has neither a default nor fields`);
      for (const [k, child] of Object.entries(props)) walk(child, `${path}.${k}`);
    };
    walk(SettingsSchema as unknown as Record<string, unknown>, 'settings');
  });

  it('layers built-in ← spec.defaults ← the upstream\'s own settings', () => {
    const merged = mergeSettings({ timeouts: { total: '60s', firstByte: '5s' } }, { timeouts: { firstByte: '2s' } });
    assert.equal(merged.timeouts.total, '60s');
    assert.equal(merged.timeouts.firstByte, '2s');
    assert.equal(merged.timeouts.attempt, '120s');
    assert.equal(merged.retry.attempts, 3);
  });

  it('accepts a bare spec and a whole ResiliencePolicy, filling defaults', () => {
    const bare = validatePolicy(example('minimal.yaml'));
    assert.ok(bare.ok);
    assert.equal(bare.spec.upstreams[0]!.api, 'openai');
    assert.equal(bare.spec.priorities.default, 'normal');
    assert.equal(bare.spec.shutdown.drainTimeout, '30s');
    const whole = validatePolicy(example('chat-policy.yaml'));
    assert.ok(whole.ok, whole.ok ? '' : formatProblems(whole.problems));
    assert.equal(whole.metadata.name, 'chat');
  });

  it('validates and compiles every example policy', () => {
    for (const file of readdirSync(new URL('../../examples/policies/', import.meta.url)).filter((f) => f.endsWith('.yaml'))) {
      // `kubectl apply -n NS -f FILE` (as the README says) fails on a file that names another namespace.
      assert.equal(example(file).metadata?.namespace, undefined, `${file} names a namespace`);
      const v = validatePolicy(example(file));
      assert.ok(v.ok, `${file}: ${v.ok ? '' : formatProblems(v.problems)}`);
      const config = compileConfig(v.spec, { source: 'file', policy: file, generation: 0, hash: 'x' });
      assert.ok(config.upstreams.size > 0);
    }
  });

  it('names each invalid field by its path', () => {
    const text = problemsOf(example('invalid/bad-fields.yaml'));
    assert.match(text, /^spec\.upstreams\[0\]\.name: must be a DNS label/m);
    assert.match(text, /^spec\.upstreams\[0\]\.url: must be an http:\/\/ or https:\/\/ URL/m);
    assert.match(text, /^spec\.upstreams\[0\]\.retry\.attempts: must be >= 1/m);
    assert.match(problemsOf({ upstreams: [{ name: 'a', url: 'http://a', timeout: {} }] }), /spec\.upstreams\[0\]\.timeout: unknown field/);
    assert.match(problemsOf({ upstreams: [{ name: 'a', url: 'http://a', retry: { backoff: { jitter: 'some' } } }] }), /retry\.backoff\.jitter: must be one of: full, equal, decorrelated, none/);
    assert.match(problemsOf({ upstreams: [{ name: 'a', url: 'http://a', timeouts: { total: '10' } }] }), /timeouts\.total: must be a duration/);
    // A timer holds at most 2^31-1 ms: longer durations are refused, not wrapped to ~1 ms.
    const long = problemsOf({ upstreams: [{ name: 'a', url: 'http://a', timeouts: { total: '1000h' }, fallback: [{ static: { message: 'x' } }] }], defaults: { bulkhead: { queueTimeout: '596h1ms' } }, faults: [{ upstream: 'a', percent: 1, delay: '600h' }] });
    assert.match(long, /^spec\.upstreams\[0\]\.timeouts\.total: must be at most 596h$/m);
    assert.match(long, /^spec\.defaults\.bulkhead\.queueTimeout: must be at most 596h$/m);
    assert.match(long, /^spec\.faults\[0\]\.delay: must be at most 596h$/m);
    assert.equal(validatePolicy({ upstreams: [{ name: 'a', url: 'http://a', timeouts: { total: '596h' } }] }).ok, true);
    assert.match(problemsOf({ upstreams: [] }), /spec\.upstreams: must NOT have fewer than 1 items/);
    assert.match(problemsOf({}), /spec\.upstreams: is required/);
    assert.match(problemsOf({ apiVersion: 'v1', kind: 'ConfigMap' }), /apiVersion: must be breakwater.dev\/v1alpha1/);
  });

  it('checks the cross-field rules', () => {
    const text = problemsOf(example('invalid/cross-field.yaml'));
    assert.match(text, /spec\.upstreams\[1\]\.name: duplicate upstream name "primary"/);
    assert.match(text, /spec\.upstreams\[0\]\.retry\.backoff\.base: must not exceed retry\.backoff\.max/);
    assert.match(text, /spec\.upstreams\[0\]\.fallback\[0\]\.upstream: "secondary" names no upstream of this policy \(known: primary\)/);
    assert.match(problemsOf({ upstreams: [{ name: 'a' }] }), /spec\.upstreams\[0\]: exactly one of url or endpoints/);
    assert.match(problemsOf({ upstreams: [{ name: 'a', url: 'http://a' }], priorities: { default: 'vip' } }), /spec\.priorities\.default: "vip" names no class/);
    assert.match(problemsOf({ defaults: { circuitBreaker: { openFor: '10m', maxOpenFor: '5m' } }, upstreams: [{ name: 'a', url: 'http://a' }] }), /spec\.defaults\.circuitBreaker\.openFor: must not exceed/);
  });

  it('names the item and the value a reference to an upstream gets wrong, as the CRD\'s messages do', () => {
    const text = problemsOf({
      upstreams: [
        { name: 'a', url: 'http://a', fallback: [{ static: { message: 'x' } }, { upstream: 'a' }], hedge: { delay: '1s', upstream: 'z' } },
        { name: 'b', url: 'http://b', api: 'anthropic', hedge: { delay: '1s', upstream: 'b' } },
        { name: 'c', url: 'http://c', fallback: [{ upstream: 'b' }], hedge: { delay: '1s', upstream: 'b' } },
      ],
      faults: [{ upstream: 'a', percent: 1 }, { upstream: 'y', percent: 1 }],
    });
    assert.match(text, /^spec\.upstreams\[0\]\.fallback\[1\]\.upstream: "a" is this upstream itself: an upstream cannot fall back to itself$/m);
    assert.match(text, /^spec\.upstreams\[0\]\.hedge\.upstream: "z" names no upstream of this policy \(known: a, b, c\)$/m);
    assert.match(text, /^spec\.upstreams\[1\]\.hedge\.upstream: "b" is this upstream itself: a hedge goes to another upstream$/m);
    assert.match(text, /^spec\.upstreams\[2\]\.fallback\[0\]\.upstream: "b" speaks anthropic, and "c" openai: a chain speaks one API/m);
    assert.match(text, /^spec\.upstreams\[2\]\.hedge\.upstream: "b" speaks anthropic, and "c" openai: a hedge speaks the API/m);
    assert.match(text, /^spec\.faults\[1\]\.upstream: "y" names no upstream of this policy \(known: a, b, c\)$/m);
    assert.equal(text.split('\n').length, 6, text);
  });

  it('takes only Secret names and keys Kubernetes can have, and names a bad one quoted and cut short (red team, issue 26)', () => {
    const withRefs = (name: string, key: string) => ({
      upstreams: [{ name: 'a', url: 'http://a', auth: { secretRef: { name, key } } }],
      cache: { redis: { url: 'redis://r:6379', secretRef: { name, key } } },
    });
    for (const [name, key] of [['openai-key', 'apiKey'], ['llm.keys', 'tls.crt'], ['a', '.hidden'], ['a'.repeat(253), 'K_E-Y.1'], ['a', 'a..b']]) {
      const v = validatePolicy(withRefs(name!, key!));
      assert.ok(v.ok, `${name} / ${key}: ${v.ok ? '' : formatProblems(v.problems)}`);
    }
    for (const name of ['..', '.', 'Upper', 'a_b', 'a/b', '-a', 'a-', 'a..b', 'a.-b', '', 'a'.repeat(254)]) {
      assert.match(problemsOf(withRefs(name, 'k')), /^spec\.upstreams\[0\]\.auth\.secretRef\.name: /m, JSON.stringify(name));
      assert.match(problemsOf(withRefs(name, 'k')), /^spec\.cache\.redis\.secretRef\.name: /m, JSON.stringify(name));
    }
    for (const key of ['bad key!', '.', '..', '..a', 'a/b', '', 'k'.repeat(254)]) {
      assert.match(problemsOf(withRefs('s', key)), /^spec\.upstreams\[0\]\.auth\.secretRef\.key: /m, JSON.stringify(key));
    }
    const text = problemsOf(withRefs('..', 'bad key!'));
    assert.match(text, /^spec\.upstreams\[0\]\.auth\.secretRef\.name: "\.\." is not a Secret name: /m);
    assert.match(text, /^spec\.upstreams\[0\]\.auth\.secretRef\.key: "bad key!" is not a key of a Secret: /m);
    // Control characters come out escaped, and a long value cut: one line per problem, of bounded length.
    const hostile = problemsOf(withRefs(`x\u001b[31mRED${'y'.repeat(5000)}`, 'k\nFAKE: injected line'));
    assert.match(hostile, /^spec\.upstreams\[0\]\.auth\.secretRef\.name: "x\\u001b\[31mREDy+"\.\.\. \(5009 characters\) is not a Secret name/m);
    assert.match(hostile, /^spec\.upstreams\[0\]\.auth\.secretRef\.key: "k\\nFAKE: injected line" is not a key of a Secret/m);
    assert.ok(!/[\u0000-\u0009\u000b-\u001f]/.test(hostile) && hostile.split('\n').every((line) => line.length < 400), hostile);
  });

  it('lets an inherited cap stretch to an explicit value, as the API server does', () => {
    const v = validatePolicy({ upstreams: [{ name: 'a', url: 'http://a', retry: { backoff: { base: '20s' } }, circuitBreaker: { openFor: '10m' } }] });
    assert.ok(v.ok, v.ok ? '' : formatProblems(v.problems));
    const u = compileConfig(v.spec, { source: 'file', policy: 'p', generation: 0, hash: 'h' }).upstreams.get('a')!;
    assert.equal(u.retry.backoff.maxMs, 20_000, 'max (10s inherited) stretched to base');
    assert.equal(u.breaker.maxOpenForMs, 600_000, 'maxOpenFor (5m inherited) stretched to openFor');
  });

  it('lets the upstream\'s own adaptive bound win over a crossed one from defaults', () => {
    const compiled = (upstream: object) => {
      const v = validatePolicy({ defaults: { bulkhead: { adaptive: { min: 100 } } }, upstreams: [{ name: 'a', url: 'http://a', bulkhead: upstream }] });
      assert.ok(v.ok, v.ok ? '' : formatProblems(v.problems));
      return compileConfig(v.spec, { source: 'file', policy: 'p', generation: 0, hash: 'h' }).upstreams.get('a')!.bulkhead.adaptive!;
    };
    assert.deepEqual(compiled({ adaptive: { max: 10 } }), { min: 10, max: 10, initial: 10 }, 'its max of 10 holds: the inherited min yields');
    assert.deepEqual(compiled({}), { min: 100, max: 1024, initial: 100 });
  });

  it('describes every field of the CRD, for kubectl explain', () => {
    const crd = parse(readFileSync(new URL('../../crds/breakwater.dev_resiliencepolicies.yaml', import.meta.url), 'utf8'));
    const missing: string[] = [];
    const walk = (schema: Record<string, any>, path: string): void => {
      for (const [key, child] of Object.entries<Record<string, any>>(schema.properties ?? {})) {
        // metadata is Kubernetes' ObjectMeta: the API server describes it.
        if (path === 'rp' && key === 'metadata') continue;
        if (typeof child.description !== 'string' || child.description.trim() === '') missing.push(`${path}.${key}`);
        walk(child, `${path}.${key}`);
      }
      if (schema.items) walk(schema.items, path);
      if (typeof schema.additionalProperties === 'object') walk(schema.additionalProperties, `${path}.*`);
    };
    walk(crd.spec.versions[0].schema.openAPIV3Schema, 'rp');
    assert.deepEqual(missing, [], 'fields without a description (kubectl explain says <no description>)');
    assert.ok(!/see the contract|v1alpha1\.md/.test(JSON.stringify(crd)), 'descriptions point at no document the repository lacks');
  });

  it('sends CEL\'s duration() only durations it can read', () => {
    const tooLong = new RegExp(DURATION_TOO_LONG);
    const pattern = new RegExp(DURATION_PATTERN);
    const maxMs = parseDuration(MAX_DURATION);
    // What the pattern takes and the too-long check lets through is at most ~29,000 h: far below 2^63 ns (2,562,047 h).
    for (const text of ['999h', '99999m', '9999999s', '9999999999ms', '596h', '999h999h999h999h999h999h999h', '0000000999h', '999.999999999h', '9999999s9999999s9999999s', '1000000s', '1000000000ms', '1000000ms']) {
      assert.ok(pattern.test(text) && !tooLong.test(text), text);
      assert.ok(parseDuration(text) < 2 ** 63 / 1e6, text);
    }
    // What it catches is longer than MAX_DURATION, so "must be at most 596h" is true of it.
    for (const text of ['1000h', '100000m', '10000000s', '10000000000ms', '1s1000h', '5ms0001000h', '9999999h', '99999999999999999999999999999h', '1h100000m']) {
      assert.ok(pattern.test(text) && tooLong.test(text), text);
      assert.ok(parseDuration(text) > maxMs, text);
    }
  });

  it('has its generated files up to date (run `npm run generate` after changing the schema)', () => {
    for (const [path, content] of Object.entries(generatedFiles())) {
      assert.equal(readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8'), content, `${path} is stale`);
    }
  });

  it('does not modify the document it validates', () => {
    const doc = { upstreams: [{ name: 'a', url: 'http://a' }] };
    validatePolicy(doc);
    assert.deepEqual(doc, { upstreams: [{ name: 'a', url: 'http://a' }] });
  });
});
