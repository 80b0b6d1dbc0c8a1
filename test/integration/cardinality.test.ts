/**
 * Model names come from apps and can be anything, of any length: the
 * metrics, the breakers and the log stay bounded whatever apps send.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { chat, post, startMock, startRig } from '../support/harness.js';

describe('cardinality', () => {
  it('keeps /metrics, breaker keys and log lines bounded under 600 distinct 20 KB models', async (t) => {
    const mock = await startMock(t);
    mock.defaultBehavior = { kind: 'status', status: 500 };
    const rig = await startRig(t, { upstreams: [{ name: 'primary', url: mock.url, retry: { attempts: 1 }, circuitBreaker: { scope: 'model', consecutiveFailures: 1 } }] });
    for (let i = 0; i < 600; i++) await post(rig.url('/primary/v1/chat/completions'), chat({ model: `${i}-${'m'.repeat(20_000)}` }));
    const metrics = await (await fetch(`${rig.sidecar.adminUrl}/metrics`)).text();
    assert.ok(metrics.length < 200_000, `/metrics is ${metrics.length} bytes`);
    const openBreakers = await rig.metric('breakwater_circuit_breaker_state', { state: 'open' });
    assert.equal(openBreakers, 600, 'every open breaker is counted (most of them under model="other")');
    const longest = Math.max(...rig.sidecar.state.upstream('primary')!.breakerEntries().map(([key]) => key.length));
    assert.ok(longest <= 256, `a breaker key of ${longest} characters`);
    const lines = rig.logs.filter((l) => l.msg === 'request');
    assert.ok(lines.every((l) => String(l.model).length <= 256), 'log lines carry a bounded model');
  });
});
