/**
 * Hedged requests on a real sidecar against a real upstream on 127.0.0.1: a
 * stream whose first token is slow gets a hedge after the delay; the hedge's
 * first token wins, the slow attempt's connection is closed (the upstream
 * sees the cancel), and the app is told in x-breakwater-hedge.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { until } from '../support/until.js';
import { chat, post, startMock, startRig } from '../support/harness.js';


describe('hedged requests', () => {
  it('race a slow first attempt; the loser\'s connection is closed', async (t) => {
    const mock = await startMock(t);
    const rig = await startRig(t, { upstreams: [{ name: 'model', url: mock.url, hedge: { delay: '100ms' } }] });
    mock.enqueue({ kind: 'ok', delayMs: 5000, chunks: 3 }); // the first attempt: no first token for 5 s
    const streamed = await post(rig.url('/model/v1/chat/completions'), chat({ stream: true }));
    assert.equal(streamed.status, 200);
    assert.match(streamed.text, /data: \[DONE\]/);
    assert.equal(streamed.headers.get('x-breakwater-hedge'), 'won');
    assert.equal(streamed.headers.get('x-breakwater-attempts'), '2');
    assert.equal(mock.requests.length, 2);
    await until('the slow attempt abandoned at the upstream', () => mock.abandoned === 1);
    assert.equal(await rig.metric('breakwater_hedges_total', { result: 'won' }), 1);

    const quick = await post(rig.url('/model/v1/chat/completions'), chat());
    assert.equal(quick.headers.get('x-breakwater-hedge'), null, 'a quick answer is not hedged');
    assert.equal(mock.requests.length, 3);
  });

  it('send no hedge past the breaker: a half-open breaker\'s single probe is not doubled', async (t) => {
    const mock = await startMock(t);
    const rig = await startRig(t, { upstreams: [{ name: 'model', url: mock.url, hedge: { delay: '50ms' }, retry: { attempts: 1 }, circuitBreaker: { consecutiveFailures: 1, openFor: '200ms', halfOpen: { maxProbes: 1, successesToClose: 1 } } }] });
    mock.enqueue({ kind: 'status', status: 500 }, { kind: 'ok', delayMs: 400 });
    assert.equal((await post(rig.url('/model/v1/chat/completions'), chat())).status, 500); // opens the breaker
    assert.equal((await post(rig.url('/model/v1/chat/completions'), chat())).json().error.code, 'circuit_open');
    await new Promise((r) => setTimeout(r, 250)); // half-open: one probe may go
    const probe = await post(rig.url('/model/v1/chat/completions'), chat());
    assert.equal(probe.status, 200, 'the slow probe answered');
    assert.equal(probe.headers.get('x-breakwater-hedge'), null);
    assert.equal(mock.requests.length, 2, 'the failure and the probe: the hedge was refused by the breaker');
    assert.equal(await rig.metric('breakwater_hedges_total', { result: 'refused' }), 1);
  });

  it('send a hedge to another upstream through that upstream\'s guards and budget (red team, issue 25)', async (t) => {
    const slow = await startMock(t);
    slow.defaultBehavior = { kind: 'ok', delayMs: 3000 };
    const other = await startMock(t);
    const rig = await startRig(t, {
      upstreams: [
        { name: 'a', url: slow.url, retry: { attempts: 1 }, hedge: { delay: '50ms', upstream: 'b' } },
        { name: 'b', url: other.url, guards: { deny: [{ name: 'secret', pattern: 'TOPSECRET' }] }, budget: { window: 'hour', tokens: 1 } },
      ],
    });
    const guarded = await post(rig.url('/a/v1/chat/completions'), chat({ messages: [{ role: 'user', content: 'TOPSECRET data' }] }));
    assert.equal(other.requests.length, 0, 'b\'s guard kept the hedge from b');
    assert.equal(guarded.status, 200, 'a answered in the end');
    assert.notEqual(guarded.headers.get('x-breakwater-upstream'), 'b');
    const budgeted = await post(rig.url('/a/v1/chat/completions'), chat());
    assert.equal(other.requests.length, 0, 'b\'s 1-token budget kept the hedge from b');
    assert.equal(budgeted.status, 200);
  });
});

