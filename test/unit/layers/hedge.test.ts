/** The hedge layer alone, on a ManualClock, with attempts the test answers by hand. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Handler, Outcome, ProxyRequest, RequestContext } from '../../../sidecar/proxy/handler.js';
import { validatePolicy } from '../../../api/validate-policy.js';
import { hedge } from '../../../sidecar/proxy/layers/hedge.js';
import { LatencyWindow } from '../../../sidecar/resilience/latency-window.js';
import type { AbortWatch } from '../../../sidecar/resilience/abort-flag.js';
import { answer, breakerRefused, contextAt, DrivenStream, ManualClock, metrics, requestTo, settle, streamOf, upstreamOf } from '../../support/layer-kit.js';

/** An inner handler whose attempts stay pending until the test answers them. */
function attempts() {
  const calls: { req: ProxyRequest; signal: AbortWatch; answer(o: Outcome): void }[] = [];
  const handler: Handler = (req, ctx: RequestContext) => new Promise((resolve) => calls.push({ req, signal: ctx.signal, answer: resolve }));
  return { handler, calls };
}

const hedged = (clock: ManualClock, hedgeSettings: object = { delay: '300ms' }, budget?: object) => {
  const upstream = upstreamOf(clock, { hedge: hedgeSettings, ...(budget ? { retry: { budget } } : {}) });
  const inner = attempts();
  const handler = hedge({ clock, metrics, upstream: () => undefined, tier: inner.handler })(inner.handler);
  return { upstream, inner, handler };
};

const count = async (result: string) => Number((await metrics.registry.metrics()).match(new RegExp(`breakwater_hedges_total\\{upstream="primary",result="${result}"\\} (\\d+)`))?.[1] ?? 0);

describe('hedge layer', () => {
  it('sends the hedge to the named upstream, with its model and its own credentials, never the app\'s', async () => {
    const clock = new ManualClock();
    const spec = {
      upstreams: [
        { name: 'primary', url: 'http://127.0.0.1:9', hedge: { delay: '300ms', upstream: 'fast', model: 'small' } },
        { name: 'fast', url: 'http://127.0.0.1:8', auth: { env: 'BREAKWATER_TEST_FAST_KEY' } },
      ],
    };
    process.env.BREAKWATER_TEST_FAST_KEY = 'sk-fast';
    const primary = upstreamOf(clock, {}, spec, 'primary');
    const fast = upstreamOf(clock, {}, spec, 'fast');
    const inner = attempts();
    const handler = hedge({ clock, metrics, upstream: (n) => (n === 'fast' ? fast : undefined), tier: inner.handler })(inner.handler);
    const ctx = contextAt(clock);
    const done = handler(requestTo(primary, { appHeaders: { authorization: 'Bearer app-key' }, headers: { authorization: 'Bearer app-key' } }), ctx);
    await settle();
    clock.advance(300);
    await settle();
    const sent = inner.calls[1]!.req;
    assert.deepEqual([sent.upstream.name, sent.model, JSON.parse(sent.body!.toString()).model], ['fast', 'small', 'small']);
    assert.equal(sent.hedged, true, 'sent into the target\'s tier as a hedge, which is not hedged again');
    assert.equal(sent.headers.authorization, 'Bearer sk-fast', 'the hedge target\'s credentials');
    assert.ok(!JSON.stringify(sent.headers).includes('app-key'), 'the app\'s credentials stay with the upstream it addressed');
    inner.calls[1]!.answer({ ...answer(), upstream: 'fast' });
    const outcome = await done;
    assert.equal(outcome.kind === 'answer' && outcome.upstream, 'fast');
    assert.equal(ctx.report.hedge, 'won');
    assert.equal(inner.calls[0]!.signal.aborted, true);
  });

  it('counts a hedge into another upstream\'s tier once: by that tier\'s own attempts, not again by the hedge (review of issue 28)', async () => {
    const clock = new ManualClock();
    const spec = { upstreams: [{ name: 'primary', url: 'http://127.0.0.1:9', hedge: { delay: '300ms', upstream: 'fast' } }, { name: 'fast', url: 'http://127.0.0.1:8' }] };
    const primary = upstreamOf(clock, {}, spec, 'primary');
    const fast = upstreamOf(clock, {}, spec, 'fast');
    const inner = attempts();
    // The target's tier, as its retry layer does: one attempt counted in the run's own report.
    const tier: Handler = (req, ctx) => {
      ctx.report.attempted();
      return inner.handler(req, ctx);
    };
    const handler = hedge({ clock, metrics, upstream: (n) => (n === 'fast' ? fast : undefined), tier })(inner.handler);
    const ctx = contextAt(clock);
    const done = handler(requestTo(primary), ctx);
    await settle();
    clock.advance(300);
    await settle();
    inner.calls[1]!.answer({ ...answer(), upstream: 'fast' });
    await done;
    await settle();
    assert.equal(ctx.report.attempts, 1, 'the hedge\'s one attempt, counted once (the first attempt is the retry layer\'s to count, outside this one)');
  });

  it('takes hedge.upstream only when it names another upstream of the policy', () => {
    const v = validatePolicy({ upstreams: [{ name: 'a', url: 'http://x', hedge: { delay: '1s', upstream: 'a' } }, { name: 'b', url: 'http://y', hedge: { model: 'm' } }] });
    assert.deepEqual(!v.ok && v.problems.map((p) => p.path), ['spec.upstreams[0].hedge.upstream', 'spec.upstreams[1].hedge.model']);
  });

  it('sends no hedge when the first attempt answers within the delay', async () => {
    const clock = new ManualClock();
    const { upstream, inner, handler } = hedged(clock);
    const done = handler(requestTo(upstream), contextAt(clock));
    await settle();
    clock.advance(299);
    inner.calls[0]!.answer(answer());
    assert.equal((await done).kind, 'answer');
    clock.advance(1000);
    await settle();
    assert.equal(inner.calls.length, 1);
  });

  it('hedges a slow first attempt; the first good outcome wins and the other attempt is cancelled at once', async () => {
    const clock = new ManualClock();
    const { upstream, inner, handler } = hedged(clock);
    const ctx = contextAt(clock);
    const won = await count('won');
    const done = handler(requestTo(upstream), ctx);
    await settle();
    clock.advance(300);
    await settle();
    assert.equal(inner.calls.length, 2, 'the hedge went out after 300 ms');
    const stream = new DrivenStream();
    inner.calls[1]!.answer(streamOf(stream));
    const outcome = await done;
    assert.equal(outcome.kind, 'stream');
    assert.equal(inner.calls[0]!.signal.aborted, true, 'the slow first attempt is aborted');
    assert.equal(inner.calls[1]!.signal.aborted, false);
    assert.equal(ctx.report.hedge, 'won');
    assert.equal(ctx.report.attempts, 1, 'the hedge counts as an attempt (the retry layer counts the first)');
    assert.equal(await count('won'), won + 1);
  });

  it('cancels the hedge\'s stream when the first attempt answers first', async () => {
    const clock = new ManualClock();
    const { upstream, inner, handler } = hedged(clock);
    const ctx = contextAt(clock);
    const done = handler(requestTo(upstream), ctx);
    await settle();
    clock.advance(300);
    await settle();
    inner.calls[0]!.answer(answer());
    assert.equal((await done).kind, 'answer');
    assert.equal(inner.calls[1]!.signal.aborted, true);
    const late = new DrivenStream();
    inner.calls[1]!.answer(streamOf(late)); // the aborted hedge's stream had already started
    await settle();
    assert.equal(late.cancels, 1, 'given up as soon as it arrives');
    assert.equal(ctx.report.hedge, 'lost');
  });

  it('waits for the other attempt when one fails, and gives back the budget when the breaker refuses the hedge', async () => {
    const clock = new ManualClock();
    const { upstream, inner, handler } = hedged(clock);
    const done = handler(requestTo(upstream), contextAt(clock));
    await settle();
    clock.advance(300);
    await settle();
    inner.calls[0]!.answer(answer(502, 'server-error'));
    await settle();
    inner.calls[1]!.answer(answer());
    const outcome = await done;
    assert.equal(outcome.kind === 'answer' && outcome.status, 200, 'the hedge rescued the failed first attempt');

    const refusedBefore = await count('refused');
    const ctx = contextAt(clock);
    const second = handler(requestTo(upstream), ctx);
    await settle();
    clock.advance(300);
    await settle();
    inner.calls[3]!.answer(breakerRefused());
    await settle();
    inner.calls[2]!.answer(answer());
    assert.equal((await second).kind, 'answer');
    assert.equal(await count('refused'), refusedBefore + 1);
    assert.equal(ctx.report.attempts, 0, 'a refused hedge is no attempt');
  });

  it('sends no hedge when the retry budget has nothing left', async () => {
    const clock = new ManualClock();
    const { upstream, inner, handler } = hedged(clock, { delay: '300ms' }, { ratio: 0, minPerSecond: 0 });
    const before = await count('budget');
    const done = handler(requestTo(upstream), contextAt(clock));
    await settle();
    clock.advance(1000);
    await settle();
    assert.equal(inner.calls.length, 1);
    assert.equal(await count('budget'), before + 1);
    inner.calls[0]!.answer(answer());
    assert.equal((await done).kind, 'answer');
  });

  it('aborts both attempts when the app goes away', async () => {
    const clock = new ManualClock();
    const { upstream, inner, handler } = hedged(clock);
    const ctx = contextAt(clock);
    void handler(requestTo(upstream), ctx);
    await settle();
    clock.advance(300);
    await settle();
    ctx.abort();
    assert.deepEqual(inner.calls.map((c) => c.signal.aborted), [true, true]);
    for (const c of inner.calls) c.answer({ kind: 'cancelled' });
  });

  it('reads its delay from a percentile of recent first-token times once it has 20', async () => {
    const clock = new ManualClock();
    const { upstream, inner, handler } = hedged(clock, { delay: '10ms', percentile: 90 });
    const slowRequest = async () => {
      const done = handler(requestTo(upstream), contextAt(clock));
      await settle();
      clock.advance(100);
      await settle();
      inner.calls.at(-2)!.answer(answer()); // the first attempt answers at 100 ms; the hedge loses
      await done;
    };
    for (let i = 0; i < 20; i++) await slowRequest();
    assert.equal(inner.calls.length, 40, 'with fewer than 20 samples, every slow request was hedged at the fixed 10 ms');
    const next = handler(requestTo(upstream), contextAt(clock));
    await settle();
    clock.advance(99);
    await settle();
    assert.equal(inner.calls.length, 41, 'p90 of the window is 100 ms: no hedge before it');
    clock.advance(1);
    await settle();
    assert.equal(inner.calls.length, 42);
    inner.calls[40]!.answer(answer());
    await next;

    const window = new LatencyWindow(5);
    for (const ms of [10, 20, 30, 40, 50, 60]) window.record(ms);
    assert.deepEqual([window.size, window.percentile(50), window.percentile(99)], [5, 40, 60], 'the oldest sample gave way');
  });
});
