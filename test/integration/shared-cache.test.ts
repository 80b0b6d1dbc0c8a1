/**
 * The shared answer cache on a real redis-server (Debian's, installed by
 * scripts/ensure-redis.sh when missing): two sidecars of a "fleet" share
 * answers, Redis going away mid-test fails no request, and a rotated Redis
 * password reaches the shared client without emptying the pod's own cache.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { credentialKey, validatePolicy } from '../../api/index.js';
import { compileConfig } from '../../sidecar/config/compile-config.js';
import { chat, post, startMock, startRig, type Rig } from '../support/harness.js';
import { startRedis, type RedisServer } from '../support/redis-server.js';
import { until } from '../support/until.js';

describe('shared cache on Redis', () => {
  let redis: RedisServer;
  let port: number;

  before(async () => {
    redis = await startRedis(undefined);
    port = redis.port;
  });
  after(() => redis.kill());

  const policy = (url: string) => ({
    upstreams: [{ name: 'primary', url, retry: { attempts: 1 }, circuitBreaker: { consecutiveFailures: 0 }, fallback: [{ cache: {} }, { static: { message: 'busy' } }] }],
    cache: { redis: { url: `redis://127.0.0.1:${port}` } },
  });
  const sharedReady = async (rig: Rig) => {
    for (let i = 0; i < 100; i++) {
      const status = (await (await fetch(`${rig.sidecar.adminUrl}/status`)).json()) as { sharedCache: string };
      if (status.sharedCache === 'ready') return;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error('the shared cache never connected');
  };

  it('answers a pod from what another pod cached, and keeps serving when Redis goes away', async (t) => {
    const healthy = await startMock(t);
    const failing = await startMock(t);
    failing.defaultBehavior = { kind: 'status', status: 503 };
    const podA = await startRig(t, policy(healthy.url));
    const podB = await startRig(t, policy(failing.url));
    await sharedReady(podA);
    await sharedReady(podB);

    healthy.enqueue({ kind: 'ok', text: 'Shared across the fleet.' });
    const question = chat({ messages: [{ role: 'user', content: 'what is shared?' }] });
    assert.equal((await post(podA.url('/primary/v1/chat/completions'), question)).json().choices[0].message.content, 'Shared across the fleet.');
    const fromFleet = await post(podB.url('/primary/v1/chat/completions'), question);
    assert.equal(fromFleet.headers.get('x-breakwater-cache'), 'hit');
    assert.equal(fromFleet.json().choices[0].message.content, 'Shared across the fleet.', 'pod B never saw this answer from its own upstream');

    await redis.kill();
    const stillServed = await post(podA.url('/primary/v1/chat/completions'), chat());
    assert.equal(stillServed.status, 200);
    const degraded = await post(podB.url('/primary/v1/chat/completions'), chat({ messages: [{ role: 'user', content: 'new question' }] }));
    assert.equal(degraded.status, 200);
    assert.equal(degraded.headers.get('x-breakwater-fallback'), 'static');
    assert.ok(degraded.ms < 1000, `answered in ${degraded.ms} ms with Redis gone`);
    const again = await post(podB.url('/primary/v1/chat/completions'), question);
    assert.equal(again.headers.get('x-breakwater-cache'), 'hit', 'what pod B already fetched stays in its local cache');
  });

  it('never answers one policy\'s request with another policy\'s answer when they share a Redis (red team, issue 29)', async (t) => {
    const shared = await startRedis(t);
    const healthy = await startMock(t);
    const failing = await startMock(t);
    failing.defaultBehavior = { kind: 'status', status: 503 };
    const team = (name: string, url: string) => ({ apiVersion: 'breakwater.dev/v1alpha1', kind: 'ResiliencePolicy', metadata: { name, namespace: 'shop' }, spec: { ...policy(url), cache: { redis: { url: `redis://127.0.0.1:${shared.port}` } } } });
    const teamA = await startRig(t, team('team-a', healthy.url));
    const teamB = await startRig(t, team('team-b', failing.url));
    const teamA2 = await startRig(t, team('team-a', failing.url));
    for (const rig of [teamA, teamB, teamA2]) await sharedReady(rig);
    healthy.enqueue({ kind: 'ok', text: 'Only for team A.' });
    const question = chat({ messages: [{ role: 'user', content: 'what is ours?' }] });
    assert.equal((await post(teamA.url('/primary/v1/chat/completions'), question)).json().choices[0].message.content, 'Only for team A.');
    const other = await post(teamB.url('/primary/v1/chat/completions'), question);
    assert.equal(other.headers.get('x-breakwater-cache'), null, 'team B\'s pod got no answer of team A\'s');
    assert.equal(other.headers.get('x-breakwater-fallback'), 'static');
    const same = await post(teamA2.url('/primary/v1/chat/completions'), question);
    assert.equal(same.headers.get('x-breakwater-cache'), 'hit', 'another pod of team A shares it');
  });

  it('keeps the pod\'s answers when only the Redis password rotates, and the shared client authenticates with the new one (red team, issue 26)', async (t) => {
    const guarded = await startRedis(t, undefined, '--requirepass', 'pw-one');
    const admin = new Redis({ host: '127.0.0.1', port: guarded.port, password: 'pw-one', lazyConnect: true });
    await admin.connect();
    t.after(() => admin.disconnect());
    const upstream = await startMock(t);
    const spec = {
      upstreams: [{ name: 'primary', url: upstream.url, retry: { attempts: 1 }, circuitBreaker: { consecutiveFailures: 0 }, fallback: [{ cache: {} }] }],
      cache: { redis: { url: `redis://127.0.0.1:${guarded.port}`, secretRef: { name: 'redis', key: 'password' } } },
    };
    const verdict = validatePolicy(spec);
    assert.ok(verdict.ok);
    // As the controller sends it: the same policy, the Secret's value beside it.
    const withPassword = (password: string) => compileConfig(verdict.spec, { source: 'controller', policy: 'shop/chat', generation: 1, hash: 'h1' }, { credentials: { [credentialKey({ name: 'redis', key: 'password' })]: password } });
    const pod = await startRig(t, { upstreams: spec.upstreams });
    assert.deepEqual(pod.sidecar.apply(withPassword('pw-one')), { ok: true });
    await sharedReady(pod);
    upstream.enqueue({ kind: 'ok', text: 'Kept through a rotation.' });
    const question = chat({ messages: [{ role: 'user', content: 'what survives a rotation?' }] });
    assert.equal((await post(pod.url('/primary/v1/chat/completions'), question)).status, 200);

    await admin.config('SET', 'requirepass', 'pw-two'); // the Secret rotates: Redis wants the new password
    assert.deepEqual(pod.sidecar.apply(withPassword('pw-two')), { ok: true });
    await admin.flushall(); // what the fleet kept is gone: only the pod's own cache can answer the first question now
    await admin.call('CLIENT', 'KILL', 'TYPE', 'normal'); // connections authenticated before stay so: every client but this one must authenticate again
    const other = chat({ messages: [{ role: 'user', content: 'does the shared client still write?' }] });
    await until('an answer written to Redis by a client that authenticated with the new password', async () => {
      await post(pod.url('/primary/v1/chat/completions'), other);
      return admin.dbsize();
    }, (keys) => keys > 0);
    upstream.defaultBehavior = { kind: 'status', status: 503 };
    const answered = await post(pod.url('/primary/v1/chat/completions'), question);
    assert.equal(answered.status, 200, answered.text);
    assert.equal(answered.headers.get('x-breakwater-fallback'), 'cache');
    assert.equal(answered.json().choices[0].message.content, 'Kept through a rotation.');
  });
});
