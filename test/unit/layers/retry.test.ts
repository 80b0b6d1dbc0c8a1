/**
 * The retry layer on a ManualClock: which failures it retries, how long it
 * waits (backoff, Retry-After read against the clock's wall time, never less
 * than the backoff), and the
 * retry budget: a retry the breaker refuses is given back to the budget. And,
 * with the real attempt layer on the system clock against upstreams that
 * hang, that neither a retry nor a mid-stream recovery starts once the
 * request's deadline timer fired.
 */
import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import type { Handler, Outcome } from '../../../sidecar/proxy/handler.js';
import { attempt } from '../../../sidecar/proxy/layers/attempt.js';
import { retry } from '../../../sidecar/proxy/layers/retry.js';
import { systemClock } from '../../../sidecar/resilience/clock.js';
import { DeliveredContent } from '../../../sidecar/resilience/stream-verifier.js';
import { streamRecovery } from '../../../sidecar/proxy/layers/stream-recovery.js';
import type { StreamEnd } from '../../../sidecar/proxy/streams/stream-body.js';
import { answer, breakerRefused, contextAt, innerGiving, localFailure, ManualClock, metrics, nextOf, requestTo, settle, upstreamOf } from '../../support/layer-kit.js';

const FAST = { retry: { attempts: 3, backoff: { base: '100ms', max: '100ms', jitter: 'none' } } };

/** Runs `pending` to completion, moving the clock 10 ms at a time; returns the outcome and the time it took on the clock. */
async function onClock(clock: ManualClock, pending: Promise<Outcome>): Promise<{ outcome: Outcome; ms: number }> {
  const start = clock.now();
  let outcome: Outcome | undefined;
  void pending.then((o) => (outcome = o));
  for (let i = 0; i < 10_000 && !outcome; i++) {
    await settle();
    if (!outcome) clock.advance(10);
  }
  assert.ok(outcome, 'the retry layer settled');
  return { outcome, ms: clock.now() - start };
}

describe('retry layer', () => {
  it('retries a retryable failure after the backoff, then returns the success, counting attempts', async () => {
    const clock = new ManualClock();
    const upstream = upstreamOf(clock, FAST);
    const inner = innerGiving(answer(503, 'overloaded'), localFailure('reset'), answer());
    const ctx = contextAt(clock);
    const { outcome, ms } = await onClock(clock, retry({ clock, metrics })(inner)(requestTo(upstream), ctx));
    assert.equal(outcome.kind === 'answer' && outcome.status, 200);
    assert.equal(inner.calls.length, 3);
    assert.equal(ctx.report.attempts, 3);
    assert.ok(ms >= 200 && ms < 250, `two backoffs of 100 ms, took ${ms}`);
  });

  it('passes a client error through after one attempt', async () => {
    const clock = new ManualClock();
    const inner = innerGiving(answer(400, 'client-error'));
    const outcome = await retry({ clock, metrics })(inner)(requestTo(upstreamOf(clock, FAST)), contextAt(clock));
    assert.equal(outcome.kind === 'answer' && outcome.stopped, 'not-retryable');
    assert.equal(inner.calls.length, 1);
  });

  it('stops after `attempts` with the last answer', async () => {
    const clock = new ManualClock();
    const inner = innerGiving(answer(500, 'server-error'));
    const { outcome } = await onClock(clock, retry({ clock, metrics })(inner)(requestTo(upstreamOf(clock, FAST)), contextAt(clock)));
    assert.equal(outcome.kind === 'answer' && outcome.stopped, 'attempts-exhausted');
    assert.equal(inner.calls.length, 3);
  });

  it('waits as long as an HTTP-date Retry-After asks, read against the clock', async () => {
    const clock = new ManualClock();
    const asked = new Date(Math.ceil((clock.wallTime() + 2000) / 1000) * 1000);
    const limited: Outcome = { ...answer(429, 'rate-limited'), headers: { 'retry-after': asked.toUTCString() } };
    const inner = innerGiving(limited, answer());
    const { outcome, ms } = await onClock(clock, retry({ clock, metrics })(inner)(requestTo(upstreamOf(clock, FAST)), contextAt(clock)));
    assert.equal(outcome.kind, 'answer');
    const expected = asked.getTime() - Date.UTC(2026, 0, 1);
    assert.ok(ms >= expected && ms < expected + 20, `waited ${ms} ms for ${expected}`);
  });

  it('waits at least the backoff when a Retry-After asks for less (0, or a date gone by): no attempts back to back', async () => {
    for (const ask of ['0', '-5', new Date(Date.UTC(2025, 0, 1)).toUTCString()]) {
      const clock = new ManualClock();
      const limited: Outcome = { ...answer(429, 'rate-limited'), headers: { 'retry-after': ask } };
      const inner = innerGiving(limited, limited, answer());
      const { ms } = await onClock(clock, retry({ clock, metrics })(inner)(requestTo(upstreamOf(clock, FAST)), contextAt(clock)));
      assert.equal(inner.calls.length, 3);
      assert.ok(ms >= 200, `Retry-After ${ask}: two backoffs of 100 ms at least, took ${ms}`);
    }
  });

  it('does not wait past the deadline', async () => {
    const clock = new ManualClock();
    const inner = innerGiving(answer(503, 'overloaded'));
    const outcome = await retry({ clock, metrics })(inner)(requestTo(upstreamOf(clock, FAST)), contextAt(clock, { deadline: 50 }));
    assert.equal(outcome.kind === 'answer' && outcome.stopped, 'deadline');
  });

  it('stops with the last answer when the breaker refuses a retry, and gives that retry back to the budget', async () => {
    const clock = new ManualClock();
    const upstream = upstreamOf(clock, { ...FAST, retry: { ...FAST.retry, budget: { ratio: 100, minPerSecond: 0 } } });
    const open = breakerRefused();
    const inner = innerGiving(answer(503, 'overloaded'), open);
    const { outcome } = await onClock(clock, retry({ clock, metrics })(inner)(requestTo(upstream), contextAt(clock)));
    assert.equal(outcome.kind === 'answer' && outcome.stopped, 'circuit-open');
    assert.ok(upstream.budget.canWithdraw(), 'the refused retry was given back: one request still buys one retry');
  });

  it('refuses a retry the budget cannot pay for', async () => {
    const clock = new ManualClock();
    const upstream = upstreamOf(clock, { ...FAST, retry: { ...FAST.retry, budget: { ratio: 0, minPerSecond: 0 } } });
    const inner = innerGiving(answer(503, 'overloaded'));
    const outcome = await retry({ clock, metrics })(inner)(requestTo(upstream), contextAt(clock));
    assert.equal(outcome.kind === 'answer' && outcome.stopped, 'budget');
    assert.equal(inner.calls.length, 1);
  });

  describe("in a mid-stream recovery, the break of this upstream's stream is its first attempt", () => {
    const resume = (upstream: string, failure: 'reset' | 'timeout' | 'content-filter') => ({ delivered: new DeliveredContent(), broke: { upstream, failure } });

    it('leaves attempts - 1 to make, after the first backoff', async () => {
      const clock = new ManualClock();
      const inner = innerGiving(answer(503, 'overloaded'));
      const ctx = contextAt(clock);
      const { outcome, ms } = await onClock(clock, retry({ clock, metrics })(inner)(requestTo(upstreamOf(clock, FAST), { stream: true, resume: resume('primary', 'reset') }), ctx));
      assert.equal(outcome.kind === 'answer' && outcome.stopped, 'attempts-exhausted');
      assert.equal(inner.calls.length, 2, 'three attempts, the break being the first');
      assert.equal(ctx.report.attempts, 2, 'the break was counted when its stream was had');
      assert.ok(ms >= 200 && ms < 250, `a backoff before each new attempt, took ${ms}`);
    });

    it('makes none with attempts: 1, and ends with the break', async () => {
      const clock = new ManualClock();
      const inner = innerGiving(answer());
      const outcome = await retry({ clock, metrics })(inner)(requestTo(upstreamOf(clock, { retry: { attempts: 1 } }), { stream: true, resume: resume('primary', 'reset') }), contextAt(clock));
      assert.equal(inner.calls.length, 0);
      assert.equal(outcome.kind === 'local' && outcome.failure, 'reset');
      assert.match(outcome.kind === 'local' ? outcome.message : '', /primary: reset: the stream broke after it started/);
    });

    it('makes none after a break it would not retry, nor after a timeout of the addressed upstream a fallback takes', async () => {
      const clock = new ManualClock();
      const chain = { upstreams: [{ name: 'primary', url: 'http://127.0.0.1:9', ...FAST, fallback: [{ upstream: 'secondary' }] }, { name: 'secondary', url: 'http://127.0.0.1:9' }] };
      for (const [upstream, failure, code] of [
        [upstreamOf(clock, FAST), 'content-filter', 'upstream_unavailable'],
        [upstreamOf(clock, {}, chain, 'primary'), 'timeout', 'upstream_timeout'],
      ] as const) {
        const inner = innerGiving(answer());
        const outcome = await retry({ clock, metrics })(inner)(requestTo(upstream, { stream: true, resume: resume('primary', failure) }), contextAt(clock));
        assert.equal(inner.calls.length, 0, failure);
        assert.deepEqual(outcome.kind === 'local' && [outcome.failure, outcome.code], [failure, code]);
      }
    });

    it('retries a timeout break of the addressed upstream when no fallback takes it', async () => {
      const clock = new ManualClock();
      const inner = innerGiving(answer());
      const { outcome } = await onClock(clock, retry({ clock, metrics })(inner)(requestTo(upstreamOf(clock, FAST), { stream: true, resume: resume('primary', 'timeout') }), contextAt(clock)));
      assert.equal(outcome.kind === 'answer' && outcome.status, 200);
      assert.equal(inner.calls.length, 1);
    });

    it('gives another upstream (a fallback tier) all its attempts, the first at once', async () => {
      const clock = new ManualClock();
      const chain = { upstreams: [{ name: 'primary', url: 'http://127.0.0.1:9', fallback: [{ upstream: 'secondary' }] }, { name: 'secondary', url: 'http://127.0.0.1:9', ...FAST }] };
      const inner = innerGiving(answer());
      const outcome = await retry({ clock, metrics })(inner)(requestTo(upstreamOf(clock, {}, chain, 'secondary'), { stream: true, resume: resume('primary', 'timeout') }), contextAt(clock));
      assert.equal(outcome.kind === 'answer' && outcome.status, 200);
      assert.equal(inner.calls.length, 1);
    });
  });

  it('never retries a body it could not replay', async () => {
    const clock = new ManualClock();
    const inner = innerGiving(answer(503, 'overloaded'));
    const { Readable } = await import('node:stream');
    const outcome = await retry({ clock, metrics })(inner)(requestTo(upstreamOf(clock, FAST), { body: null, bodyStream: Readable.from([]) }), contextAt(clock));
    assert.equal(outcome.kind === 'answer' && outcome.stopped, 'body-not-replayable');
  });
});

describe("the request's deadline, on the system clock", () => {
  // Node runs most timers up to ~2 ms before performance.now() reaches their due time; the system clock
  // re-arms those (resilience/clock.ts), so once the deadline timer ended an attempt no time is left to start another.

  /** An upstream on 127.0.0.1 that accepts and sends `head` (nothing by default), then hangs; its sockets, to count attempts. */
  async function hangingUpstream(t: { after(fn: () => void): void }, head = '') {
    const sockets: Socket[] = [];
    const server = createServer((socket) => {
      sockets.push(socket);
      socket.once('data', () => socket.write(head));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.after(() => {
      for (const socket of sockets) socket.destroy();
      server.close();
    });
    return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, sockets };
  }

  const retrying = { retry: { attempts: 3, backoff: { base: '0ms', max: '0ms', jitter: 'none' } } }; // a retry at once, if any time is left
  /** The attempt handler, on the upstream's first endpoint as the breaker layer would hand it in (no breaker here). */
  const attempting = attempt(systemClock);
  const onFirstEndpoint: Handler = (req, ctx) => attempting({ ...req, endpoint: req.upstream.endpoints[0]! }, ctx);
  const contextWithin = (ms: number) => contextAt(new ManualClock(), { startedAt: systemClock.now(), deadline: systemClock.now() + ms });

  it('starts no retry once the deadline timer ended the attempt', async (t) => {
    const upstream = await hangingUpstream(t);
    const state = upstreamOf(new ManualClock(), { url: upstream.url, ...retrying });
    for (let i = 0; i < 20; i++) {
      const outcome = await retry({ clock: systemClock, metrics })(onFirstEndpoint)(requestTo(state), contextWithin(20 + (i % 7) + 0.37));
      assert.equal(outcome.kind === 'local' && outcome.code, 'upstream_timeout');
    }
    assert.equal(upstream.sockets.length, 20, 'one attempt per request: none in the last ms the clock still showed');
  });

  it('starts no mid-stream recovery once the deadline timer ended the stream', async (t) => {
    const event = `data: ${JSON.stringify({ choices: [{ index: 0, delta: { content: 'hi' } }] })}\n\n`;
    const upstream = await hangingUpstream(t, `HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: 100000\r\n\r\n${event}`);
    const state = upstreamOf(new ManualClock(), { url: upstream.url, ...retrying });
    for (let i = 0; i < 10; i++) {
      const outcome = await streamRecovery(systemClock, metrics)(retry({ clock: systemClock, metrics })(onFirstEndpoint))(requestTo(state, { stream: true }), contextWithin(150 + (i % 7) + 0.37));
      assert.equal(outcome.kind, 'stream');
      if (outcome.kind !== 'stream') return;
      assert.equal(outcome.body.poll()?.kind, 'chunk', 'the first event');
      const end = (await nextOf(outcome.body)) as StreamEnd;
      assert.equal(end.kind === 'failed' && end.failure, 'timeout');
    }
    assert.equal(upstream.sockets.length, 10, 'no new stream asked for in the last ms the clock still showed');
  });
});
