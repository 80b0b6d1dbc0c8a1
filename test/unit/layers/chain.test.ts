/**
 * The layers above the per-tier ones: the fallback chain, the answer cache
 * and the degradation window, each with a fake inner handler.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DegradationMonitor } from '../../../sidecar/resilience/degradation.js';
import { ResponseCache } from '../../../sidecar/proxy/answers/response-cache.js';
import { answerCache } from '../../../sidecar/proxy/layers/answer-cache.js';
import { degradation } from '../../../sidecar/proxy/layers/degradation.js';
import { fallback } from '../../../sidecar/proxy/layers/fallback.js';
import { rateLimit } from '../../../sidecar/proxy/layers/rate-limit.js';
import { answer, contextAt, drain, DrivenStream, innerGiving, localFailure, ManualClock, metrics, requestTo, streamOf, upstreamOf } from '../../support/layer-kit.js';

const CHAIN = {
  upstreams: [
    { name: 'primary', url: 'http://127.0.0.1:9', fallback: [{ upstream: 'secondary', model: 'small', when: ['unavailable'] }, { cache: {} }, { static: { message: 'busy' } }] },
    { name: 'secondary', url: 'http://127.0.0.1:9' },
  ],
};

function chainRig() {
  const clock = new ManualClock();
  const primary = upstreamOf(clock, {}, CHAIN, 'primary');
  const secondary = upstreamOf(clock, {}, CHAIN, 'secondary');
  const cache = new ResponseCache({ ttlMs: 60_000, maxEntries: 10, maxBytes: 1 << 20, serveFresh: false });
  const layer = (inner: ReturnType<typeof innerGiving>) =>
    answerCache(() => cache)(fallback({ clock, metrics, upstream: (n) => (n === 'secondary' ? secondary : undefined), cache: () => cache })(inner));
  return { clock, primary, layer };
}

describe('fallback chain', () => {
  it('tries the next upstream with its model when the primary is unavailable', async () => {
    const { clock, primary, layer } = chainRig();
    const inner = innerGiving(answer(503, 'overloaded'), { ...answer(), upstream: 'secondary' });
    const outcome = await layer(inner)(requestTo(primary), contextAt(clock));
    assert.equal(outcome.kind === 'answer' && outcome.upstream, 'secondary');
    assert.deepEqual(inner.calls.map((r) => [r.upstream.name, r.model, JSON.parse(r.body!.toString()).model]), [['primary', 'm', 'm'], ['secondary', 'small', 'small']]);
  });

  it('does not route an app-caused failure (client error) anywhere', async () => {
    const { clock, primary, layer } = chainRig();
    const inner = innerGiving(answer(400, 'client-error'));
    const outcome = await layer(inner)(requestTo(primary), contextAt(clock));
    assert.equal(outcome.kind === 'answer' && outcome.status, 400);
    assert.equal(inner.calls.length, 1);
  });

  it('answers from the cache once both upstreams fail, then with the static message for a new request', async () => {
    const { clock, primary, layer } = chainRig();
    await layer(innerGiving(answer()))(requestTo(primary), contextAt(clock));
    const failing = innerGiving(localFailure('connect-failure'));
    const cached = await layer(failing)(requestTo(primary), contextAt(clock));
    assert.equal(cached.kind === 'answer' && cached.composed, 'cache');
    const other = requestTo(primary, { body: Buffer.from('{"model":"m","messages":[{"role":"user","content":"new"}]}') });
    const fixed = await layer(failing)(other, contextAt(clock));
    assert.equal(fixed.kind === 'answer' && fixed.composed, 'static');
    assert.match(fixed.kind === 'answer' ? fixed.body.toString() : '', /"content":"busy"/);
    assert.doesNotMatch(fixed.kind === 'answer' ? fixed.body.toString() : '', /mock/, 'no mock ids in composed answers');
  });

  it('in emergency mode answers only from the tiers it may serve, without calling an upstream', async () => {
    const clock = new ManualClock();
    const spec = { ...CHAIN, degradation: { emergency: { errorRate: 25, serve: ['static'] } } };
    const primary = upstreamOf(clock, {}, spec, 'primary');
    const inner = innerGiving(answer());
    const cache = new ResponseCache({ ttlMs: 0, maxEntries: 0, maxBytes: 0, serveFresh: false });
    const outcome = await fallback({ clock, metrics, upstream: () => undefined, cache: () => cache })(inner)(requestTo(primary, { mode: 'emergency' }), contextAt(clock));
    assert.equal(outcome.kind === 'answer' && outcome.composed, 'static');
    assert.equal(inner.calls.length, 0);
  });
});

describe('degradation layer', () => {
  it('counts a stream in the window when it ends, as an error if it broke', async () => {
    const clock = new ManualClock();
    const primary = upstreamOf(clock);
    const monitor = new DegradationMonitor({ windowMs: 60_000, degradedErrorRate: 50, degradedQueueDepth: 0, emergencyErrorRate: 0 }, clock);
    const layer = degradation({ monitor: () => monitor, queued: () => 0 });
    const open = [];
    for (let i = 0; i < 25; i++) {
      const body = new DrivenStream();
      open.push({ body, outcome: await layer(innerGiving(streamOf(body)))(requestTo(primary), contextAt(clock)) });
    }
    assert.equal(monitor.mode(0), 'normal', 'nothing is counted before the streams end');
    for (const { body, outcome } of open) {
      body.fail();
      await drain(outcome);
    }
    const ctx = contextAt(clock);
    await layer(innerGiving(answer()))(requestTo(primary), ctx);
    assert.equal(ctx.report.mode, 'degraded', '25 broken streams out of 25 make the sidecar degraded');
  });
});

describe('rate-limit layer', () => {
  it('corrects its token estimate with the usage a stream reports when it ends', async () => {
    const clock = new ManualClock();
    // 6,000 tokens a minute: a bucket of 1,000 (ten seconds' worth).
    const primary = upstreamOf(clock, { rateLimit: { tokensPerMinute: 6000 } });
    const body = new DrivenStream();
    const layer = rateLimit(clock)(innerGiving(streamOf(body), answer()));
    const small = requestTo(primary, { maxTokens: 10, body: Buffer.from('{}') });
    const outcome = await layer(small, contextAt(clock, { deadline: 0 }));
    body.end({ input: 500, output: 490 }); // far more than the ~11 tokens reserved
    await drain(outcome);
    const next = await layer(small, contextAt(clock, { deadline: 0 }));
    assert.equal(next.kind === 'local' && next.code, 'rate_limited', 'the reported usage emptied the bucket');
  });
});
