/**
 * The shared answer cache on a real redis-server (Debian's, installed by
 * scripts/ensure-redis.sh when missing): two sidecars of a "fleet" share
 * answers, and Redis going away mid-test fails no request.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { chat, post, startMock, startRig, type Rig } from '../support/harness.js';
import { freePort } from '../support/ports.js';

const ENSURE_REDIS = fileURLToPath(new URL('../../scripts/ensure-redis.sh', import.meta.url));

describe('shared cache on Redis', () => {
  let redis: ChildProcess;
  let port: number;

  before(async () => {
    const binary = execFileSync('bash', [ENSURE_REDIS], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim().split('\n').at(-1)!;
    port = await freePort();
    redis = spawn(binary, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      let out = '';
      redis.stdout!.on('data', (d) => {
        out += d;
        if (out.includes('Ready to accept connections')) resolve();
      });
      redis.on('exit', (code) => reject(new Error(`redis-server exited ${code}: ${out}`)));
    });
  });
  after(() => {
    if (redis.exitCode === null) redis.kill('SIGKILL');
  });

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

    redis.kill('SIGKILL');
    await new Promise((r) => redis.once('exit', r));
    const stillServed = await post(podA.url('/primary/v1/chat/completions'), chat());
    assert.equal(stillServed.status, 200);
    const degraded = await post(podB.url('/primary/v1/chat/completions'), chat({ messages: [{ role: 'user', content: 'new question' }] }));
    assert.equal(degraded.status, 200);
    assert.equal(degraded.headers.get('x-breakwater-fallback'), 'static');
    assert.ok(degraded.ms < 1000, `answered in ${degraded.ms} ms with Redis gone`);
    const again = await post(podB.url('/primary/v1/chat/completions'), question);
    assert.equal(again.headers.get('x-breakwater-cache'), 'hit', 'what pod B already fetched stays in its local cache');
  });
});
