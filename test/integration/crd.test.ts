/**
 * The ResiliencePolicy CRD on a real kube-apiserver: it installs, the example
 * policies apply (stored as written: the product fills its release's defaults), invalid ones are
 * rejected with messages that name the field — by kubectl and by the client,
 * in agreement with the sidecar's own validator — and kubectl explain / get
 * show descriptions and the printer columns.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ApiException, CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import { parse, stringify } from 'yaml';
import { BUILTIN_SETTINGS, validatePolicy } from '../../api/index.js';
import { compileConfig } from '../../sidecar/config/compile-config.js';
import { startControlPlane, type ControlPlane } from '../support/control-plane.js';

const example = (name: string) => parse(readFileSync(new URL(`../../examples/policies/${name}`, import.meta.url), 'utf8')) as Record<string, unknown>;
const asResource = (name: string, spec: unknown) => ({ apiVersion: 'breakwater.dev/v1alpha1', kind: 'ResiliencePolicy', metadata: { name, namespace: 'default' }, spec });
const GROUP = { group: 'breakwater.dev', version: 'v1alpha1', plural: 'resiliencepolicies' };

describe('ResiliencePolicy CRD on a real API server', () => {
  let cp: ControlPlane;
  let api: CustomObjectsApi;

  before(async () => {
    cp = await startControlPlane();
    await cp.installCrd();
    const kc = new KubeConfig();
    kc.loadFromFile(cp.kubeconfig);
    api = kc.makeApiClient(CustomObjectsApi);
  });
  after(() => cp?.stop());

  it('applies the example policies with kubectl as the README says, and the API server fills the defaults', async () => {
    assert.equal((await cp.kubectl(['create', 'namespace', 'team-a'])).code, 0);
    // `kubectl apply -n NAMESPACE -f FILE`: an example that named a namespace of its own would conflict with -n.
    const resources = readdirSync(new URL('../../examples/policies/', import.meta.url)).filter((f) => f.endsWith('.yaml') && 'kind' in example(f));
    assert.ok(resources.length >= 4, resources.join(', '));
    for (const file of resources) {
      const applied = await cp.kubectl(['apply', '-n', 'team-a', '-f', fileURLToPath(new URL(`../../examples/policies/${file}`, import.meta.url))]);
      assert.equal(applied.code, 0, `${file}: ${applied.stderr}`);
    }
    assert.deepEqual(
      (await cp.kubectl(['get', 'rp', '-n', 'team-a', '-o', 'jsonpath={.items[*].metadata.name}'])).stdout.split(' ').sort(),
      resources.map((f) => (example(f).metadata as { name: string }).name).sort(),
    );
    const minimal = await cp.kubectl(['apply', '-f', '-'], stringify(asResource('minimal', example('minimal.yaml'))));
    assert.equal(minimal.code, 0, minimal.stderr);
    const stored = JSON.parse((await cp.kubectl(['get', 'rp', 'minimal', '-o', 'json'])).stdout);
    assert.deepEqual(stored.spec, example('minimal.yaml'), 'the API server stores what the user wrote, no defaults');
    const described = await cp.kubectl(['describe', 'rp', 'minimal']);
    assert.ok(!/Drain Timeout|Open For|Priorities/.test(described.stdout), `describe shows what the user wrote:\n${described.stdout}`);
    // The product fills its release's defaults when it reads the policy.
    const verdict = validatePolicy(stored.spec);
    assert.ok(verdict.ok);
    assert.equal(verdict.spec.upstreams[0]!.api, 'openai');
    assert.equal(verdict.spec.priorities.default, 'normal');
    assert.equal(verdict.spec.shutdown.drainTimeout, '30s');
  });

  it('lets a changed default reach a policy stored under an earlier release', async () => {
    const stored = JSON.parse((await cp.kubectl(['get', 'rp', 'minimal', '-o', 'json'])).stdout);
    const verdict = validatePolicy(stored.spec);
    assert.ok(verdict.ok);
    const version = { source: 'controller' as const, policy: 'default/minimal', generation: 1, hash: 'h' };
    const openFor = () => compileConfig(verdict.spec, version).upstreams.values().next().value!.breaker.openForMs;
    const before = openFor();
    const saved = BUILTIN_SETTINGS.circuitBreaker.openFor;
    try {
      // The next release changes the default (as openFor once went from 30s to 10s).
      BUILTIN_SETTINGS.circuitBreaker.openFor = '45s';
      assert.equal(openFor(), 45_000, 'the stored policy runs with the new default');
    } finally {
      BUILTIN_SETTINGS.circuitBreaker.openFor = saved;
    }
    assert.equal(openFor(), before);
  });

  it('rejects invalid fields with messages that name them', async () => {
    const r = await cp.kubectl(['apply', '-f', '-'], stringify(asResource('bad-fields', example('invalid/bad-fields.yaml'))));
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /spec\.upstreams\[0\]\.name: Invalid value: "Primary_Model"/);
    assert.match(r.stderr, /spec\.upstreams\[0\]\.url: Invalid value: "ftp:\/\/models\.internal"/);
    assert.match(r.stderr, /spec\.upstreams\[0\]\.retry\.attempts: Invalid value: 0: spec\.upstreams\[0\]\.retry\.attempts in body should be greater than or equal to 1/);
  });

  it('enforces the cross-field rules as CEL, agreeing with the sidecar\'s validator', async () => {
    const cases: [string, unknown, RegExp[]][] = [
      ['cross-field', example('invalid/cross-field.yaml'), [/spec\.upstreams\[1\]: Duplicate value: \{"name":"primary"\}/, /spec\.upstreams\[0\]\.retry\.backoff: Invalid value: retry\.backoff\.base must not exceed retry\.backoff\.max/]],
      ['no-url', { upstreams: [{ name: 'a' }] }, [/spec\.upstreams\[0\]: Invalid value: exactly one of url or endpoints must be set/]],
      // The spec-level rules name the item and the value they refuse (messageExpression).
      ['bad-fallback', { upstreams: [{ name: 'a', url: 'http://a', fallback: [{ static: { message: 'x' } }, { upstream: 'b' }] }] }, [/spec: Invalid value: spec\.upstreams\[0\]\.fallback\[1\]\.upstream: "b" names no upstream of this policy/]],
      ['fallback-to-self', { upstreams: [{ name: 'a', url: 'http://a' }, { name: 'c', url: 'http://c', fallback: [{ upstream: 'c' }] }] }, [/spec\.upstreams\[1\]\.fallback\[0\]\.upstream: "c" is this upstream itself: an upstream cannot fall back to itself/]],
      ['two-tiers', { upstreams: [{ name: 'a', url: 'http://a', fallback: [{ cache: {}, static: { message: 'x' } }] }] }, [/fallback: exactly one of upstream, cache or static must be set/]],
      ['bad-priority', { upstreams: [{ name: 'a', url: 'http://a' }], priorities: { default: 'vip' } }, [/spec\.priorities: Invalid value: priorities\.default "vip" must name one of priorities\.classes/]],
      ['open-for', { upstreams: [{ name: 'a', url: 'http://a', circuitBreaker: { openFor: '10m', maxOpenFor: '5m' } }] }, [/circuitBreaker\.openFor must not exceed circuitBreaker\.maxOpenFor/]],
      ['bad-fault', { upstreams: [{ name: 'a', url: 'http://a' }], faults: [{ upstream: 'a', percent: 5 }, { upstream: 'z', percent: 5 }] }, [/spec: Invalid value: spec\.faults\[1\]\.upstream: "z" names no upstream of this policy/]],
      ['long-timeout', { upstreams: [{ name: 'a', url: 'http://a', timeouts: { total: '1000h' } }], cache: { ttl: '597h' } }, [/spec\.upstreams\[0\]\.timeouts\.total: Invalid value: "1000h": must be at most 596h/, /spec\.cache\.ttl: Invalid value: "597h": must be at most 596h/]],
      // Past 2^63 ns CEL's duration() cannot read it: still "at most 596h", not a type conversion error.
      ['huge-timeout', { upstreams: [{ name: 'a', url: 'http://a', timeouts: { total: '9999999h' }, retry: { backoff: { base: '99999999999999h', max: '1s' } } }] }, [/spec\.upstreams\[0\]\.timeouts\.total: Invalid value: "9999999h": must be at most 596h/, /spec\.upstreams\[0\]\.retry\.backoff\.base: Invalid value: "99999999999999h": must be at most 596h/]],
      ['unpriced-cost', { upstreams: [{ name: 'a', url: 'http://a', budget: { cost: '5' } }], budget: { window: 'day', cost: '0.5' } }, [/spec\.upstreams\[0\]: Invalid value: budget\.cost needs prices for this upstream's models/, /spec: Invalid value: spec\.budget\.cost needs prices on at least one upstream/]],
      ['hedge-to-self', { upstreams: [{ name: 'a', url: 'http://a', hedge: { delay: '1s', upstream: 'a' } }] }, [/spec\.upstreams\[0\]\.hedge\.upstream: "a" is this upstream itself: a hedge goes to another upstream/]],
      ['hedge-to-none', { upstreams: [{ name: 'a', url: 'http://a' }, { name: 'b', url: 'http://b', hedge: { delay: '1s', upstream: 'z' } }] }, [/spec\.upstreams\[1\]\.hedge\.upstream: "z" names no upstream of this policy/]],
      ['mixed-chain', { upstreams: [{ name: 'a', url: 'http://a', fallback: [{ upstream: 'b' }] }, { name: 'b', url: 'http://b', api: 'anthropic' }] }, [/spec\.upstreams\[0\]\.fallback\[0\]\.upstream: "b" speaks anthropic, and "a" openai: a chain speaks one API/]],
      ['mixed-hedge', { upstreams: [{ name: 'a', url: 'http://a', api: 'ollama', hedge: { delay: '1s', upstream: 'b' } }, { name: 'b', url: 'http://b' }] }, [/spec\.upstreams\[0\]\.hedge\.upstream: "b" speaks openai, and "a" ollama: a hedge speaks the API of the upstream it hedges/]],
      // Fleet limits need a store to count in (issue 29); the message names the field.
      ['fleet-without-store', { upstreams: [{ name: 'a', url: 'http://a' }, { name: 'b', url: 'http://b', rateLimit: { requestsPerMinute: 60, scope: 'fleet' } }], budget: { tokens: 1000, scope: 'fleet' } }, [/spec\.budget\.scope: fleet needs spec\.sharedState/, /spec\.upstreams\[1\]\.rateLimit\.scope: fleet needs spec\.sharedState/]],
      ['shared-cache-twice', { upstreams: [{ name: 'a', url: 'http://a' }], sharedState: { redis: { url: 'redis://r:6379' } }, cache: { shared: true, redis: { url: 'redis://other:6379' } } }, [/spec\.cache\.shared and spec\.cache\.redis\.url name two Redis for one cache/]],
      ['starved-class', { upstreams: [{ name: 'a', url: 'http://a' }], priorities: { default: 'normal', classes: [{ name: 'critical', reserved: 100 }, { name: 'normal' }] } }, [/reserved shares must add up to less than 100/]],
      ['metrics-without-health-check', { upstreams: [{ name: 'a', url: 'http://a', healthCheck: { metricsPath: '/metrics' } }] }, [/spec\.upstreams\[0\]\.healthCheck: Invalid value: .*healthCheck\.metricsPath needs healthCheck\.path/]],
    ];
    for (const [name, spec, patterns] of cases) {
      const r = await cp.kubectl(['apply', '-f', '-'], stringify(asResource(name, spec)));
      assert.notEqual(r.code, 0, `${name} was accepted by the API server`);
      for (const pattern of patterns) assert.match(r.stderr, pattern, name);
      assert.doesNotMatch(r.stderr, /type conversion error|evaluating rule/, name);
      assert.equal(validatePolicy(spec).ok, false, `${name} was accepted by the sidecar's validator`);
    }
  });

  it('refuses Secret names and keys no Secret can have, naming the field and the value, and a long one without repeating it (red team, issue 26)', async () => {
    const withRef = (name: string, key: string) => ({ upstreams: [{ name: 'a', url: 'http://a', auth: { secretRef: { name, key } } }], cache: { redis: { url: 'redis://r:6379', secretRef: { name, key } } } });
    const bad = await cp.kubectl(['apply', '-f', '-'], stringify(asResource('bad-ref', withRef('..', 'bad key!'))));
    assert.notEqual(bad.code, 0, 'accepted by the API server');
    for (const at of ['spec.upstreams[0].auth.secretRef', 'spec.cache.redis.secretRef']) {
      assert.match(bad.stderr, new RegExp(`${at.replace(/[.[\]]/g, '\\$&')}\\.name: Invalid value: "\\.\\.": `));
      assert.match(bad.stderr, new RegExp(`${at.replace(/[.[\]]/g, '\\$&')}\\.key: Invalid value: "bad key!": `));
    }
    assert.equal(validatePolicy(withRef('..', 'bad key!')).ok, false);
    const long = await cp.kubectl(['apply', '-f', '-'], stringify(asResource('long-ref', withRef(`a${'b'.repeat(100_000)}`, 'k'))));
    assert.notEqual(long.code, 0, 'accepted by the API server');
    assert.match(long.stderr, /spec\.upstreams\[0\]\.auth\.secretRef\.name: Too long/);
    assert.ok(long.stderr.length < 4000, `the message is bounded: ${long.stderr.length} characters`);
    const good = await cp.kubectl(['apply', '-f', '-'], stringify(asResource('good-ref', withRef('llm.keys', '.api_Key-1'))));
    assert.equal(good.code, 0, good.stderr);
  });

  it('says only what the pattern says of a value that is no duration', async () => {
    const r = await cp.kubectl(['apply', '-f', '-'], stringify(asResource('soon', { upstreams: [{ name: 'a', url: 'http://a', timeouts: { total: 'soon' }, retry: { backoff: { base: 'later', max: '1s' } } }], slo: { window: '1d' } })));
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /spec\.upstreams\[0\]\.timeouts\.total: Invalid value: "soon": spec\.upstreams\[0\]\.timeouts\.total in body should match/);
    assert.match(r.stderr, /spec\.upstreams\[0\]\.retry\.backoff\.base: Invalid value: "later"/);
    assert.match(r.stderr, /spec\.slo\.window: Invalid value: "1d"/);
    assert.doesNotMatch(r.stderr, /type conversion|google\.protobuf\.Duration|evaluating rule|must be at most|must not exceed|between 1m and 24h/);
    assert.equal(r.stderr.trim().split('\n').filter((l) => l.startsWith('* ')).length, 3, r.stderr);
  });

  it('rejects invalid policies sent with the client, with a 422 naming the field', async () => {
    const body = asResource('via-client', { upstreams: [{ name: 'a', url: 'http://a', timeouts: { total: 'soon' } }] });
    await assert.rejects(api.createNamespacedCustomObject({ ...GROUP, namespace: 'default', body }), (err: ApiException<string>) => {
      assert.equal(err.code, 422);
      assert.match(String(err.body), /spec\.upstreams\[0\]\.timeouts\.total/);
      return true;
    });
  });

  it('explains every field with kubectl explain', async () => {
    const r = await cp.kubectl(['explain', 'rp.spec.upstreams.retry']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Retries with backoff, Retry-After and a budget/);
    assert.match(r.stdout, /attempts\s+<integer>/);
    assert.match(r.stdout, /Default: 3/);
    const backoff = await cp.kubectl(['explain', 'rp.spec.upstreams.retry.backoff.jitter']);
    assert.match(backoff.stdout, /ENUM:\s+full\s+equal\s+decorrelated\s+none/);
    const abort = await cp.kubectl(['explain', 'rp.spec.faults.abort']);
    assert.match(abort.stdout, /Answer the attempt with this status/);
    assert.match(abort.stdout, /status\s+<integer> -required-\s+HTTP status of the injected answer/);
    // The unit test walks every field of the CRD file; here, what the API server publishes of it.
    for (const path of ['rp.spec', 'rp.spec.upstreams', 'rp.spec.upstreams.fallback', 'rp.spec.faults', 'rp.spec.podSelector.matchExpressions', 'rp.spec.degradation', 'rp.spec.cache.redis', 'rp.status', 'rp.status.slo.slis']) {
      const r = await cp.kubectl(['explain', path]);
      assert.doesNotMatch(r.stdout, /<no description>|DESCRIPTION:\s+<empty>/, path);
    }
  });

  it('shows the printer columns, short name and category, and takes status only through its subresource', async () => {
    const at = new Date(Date.now() - 3 * 3600_000).toISOString(); // a status no controller refreshed for three hours
    const status = {
      observedGeneration: 1,
      observedAt: at,
      pods: { targeted: 3, synced: 2, withOpenBreaker: 1 },
      conditions: [
        { type: 'Accepted', status: 'True', reason: 'Valid', message: 'The spec is valid and its references resolve.', lastTransitionTime: at },
        { type: 'Ready', status: 'False', reason: 'PodsNotSynced', message: '1 of 3 pods has not acknowledged generation 1', lastTransitionTime: at },
      ],
    };
    await api.patchNamespacedCustomObjectStatus({ ...GROUP, namespace: 'default', name: 'minimal', body: [{ op: 'add', path: '/status', value: status }] });
    const table = await cp.kubectl(['get', 'rp', 'minimal']);
    assert.match(table.stdout, /^NAME\s+TARGETED\s+SYNCED\s+OPEN\s+READY\s+ACCEPTED\s+SPEND\s+OBSERVED\s+AGE\s*$/m);
    assert.match(table.stdout, /^minimal\s+3\s+2\s+1\s+False\s+True\s+3h\s+\S+\s*$/m, 'OBSERVED 3h: no controller has looked since; no fleet budget: SPEND blank');
    await api.patchNamespacedCustomObjectStatus({ ...GROUP, namespace: 'default', name: 'minimal', body: [{ op: 'add', path: '/status/spend', value: 'tokens:1.2M/2M' }] });
    assert.match((await cp.kubectl(['get', 'rp', 'minimal'])).stdout, /^minimal\s+3\s+2\s+1\s+False\s+True\s+tokens:1\.2M\/2M\s+3h\s+\S+\s*$/m, 'SPEND: the fleet\'s spend against its budget');
    const all = await cp.kubectl(['get', 'breakwater', '-A', '-o', 'name']);
    assert.match(all.stdout, /resiliencepolicy\.breakwater\.dev\/chat/);
    // A status sent with the main resource is ignored.
    const current = JSON.parse((await cp.kubectl(['get', 'rp', 'minimal', '-o', 'json'])).stdout);
    current.status.pods.targeted = 99;
    await api.replaceNamespacedCustomObject({ ...GROUP, namespace: 'default', name: 'minimal', body: current });
    assert.match((await cp.kubectl(['get', 'rp', 'minimal'])).stdout, /^minimal\s+3\s+/m);
  });
});
