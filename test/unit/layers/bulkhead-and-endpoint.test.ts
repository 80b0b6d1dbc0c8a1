/**
 * The bulkhead slot and the endpoint's in-flight count are each given back
 * exactly once, however the call ends: answer, failure, throw, the app
 * leaving, and a stream that ends, fails or is abandoned (cancelled twice).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AttemptRequest, Handler, Layer } from '../../../sidecar/proxy/handler.js';
import { bulkhead } from '../../../sidecar/proxy/layers/bulkhead.js';
import { endpointLoad } from '../../../sidecar/proxy/layers/endpoint-load.js';
import type { UpstreamState } from '../../../sidecar/proxy/upstream/upstream-state.js';
import { answer, contextAt, drain, DrivenStream, innerGiving, localFailure, ManualClock, metrics, nextOf, requestTo, settle, streamOf, upstreamOf } from '../../support/layer-kit.js';

interface Held {
  name: string;
  layer: Layer | Layer<AttemptRequest>;
  held(u: UpstreamState): number;
}

const resources: Held[] = [
  { name: 'bulkhead slot', layer: bulkhead(metrics), held: (u) => u.bulkhead.active },
  { name: 'endpoint in-flight count', layer: endpointLoad, held: (u) => u.endpoints[0]!.outstanding },
];

for (const { name, layer, held } of resources) {
  describe(`${name}: taken and given back exactly once`, () => {
    const setup = (inner: Handler) => {
      const clock = new ManualClock();
      const upstream = upstreamOf(clock, { bulkhead: { maxConcurrent: 1, maxQueue: 1, queueTimeout: '1s' } });
      return { clock, upstream, handler: layer(inner), req: requestTo(upstream), ctx: contextAt(clock) };
    };

    for (const [what, outcome] of [
      ['a success', answer()],
      ['an upstream failure', answer(503, 'overloaded')],
      ['a transport failure', localFailure('reset')],
      ['the app leaving mid-attempt', { kind: 'cancelled' as const }],
    ] as const) {
      it(`after ${what}`, async () => {
        const { upstream, handler, req, ctx } = setup(innerGiving(outcome));
        await handler(req, ctx);
        assert.equal(held(upstream), 0);
      });
    }

    it('after a throw below it, which it passes on', async () => {
      const { upstream, handler, req, ctx } = setup(innerGiving(new Error('boom')));
      await assert.rejects(handler(req, ctx), /boom/);
      assert.equal(held(upstream), 0);
    });

    it('while a stream is open, and after it ends', async () => {
      const body = new DrivenStream();
      const { upstream, handler, req, ctx } = setup(innerGiving(streamOf(body)));
      const outcome = await handler(req, ctx);
      assert.equal(held(upstream), 1, 'held while the stream is being read');
      body.push('data: {}\n\n');
      body.end();
      assert.equal((await drain(outcome)).kind, 'complete');
      assert.equal(held(upstream), 0);
      if (outcome.kind === 'stream') outcome.body.cancel(); // the server's finally: a no-op now
      assert.equal(held(upstream), 0);
    });

    it('after a stream fails', async () => {
      const body = new DrivenStream();
      const { upstream, handler, req, ctx } = setup(innerGiving(streamOf(body)));
      const outcome = await handler(req, ctx);
      body.fail('timeout');
      assert.equal((await drain(outcome)).kind, 'failed');
      assert.equal(held(upstream), 0);
    });

    it('after a stream is abandoned, even twice, and cancels the stream below', async () => {
      const body = new DrivenStream();
      const { upstream, handler, req, ctx } = setup(innerGiving(streamOf(body)));
      const outcome = await handler(req, ctx);
      assert.equal(outcome.kind, 'stream');
      if (outcome.kind !== 'stream') return;
      outcome.body.cancel();
      outcome.body.cancel();
      assert.equal(held(upstream), 0);
      assert.ok(body.cancels >= 1, 'the upstream stream was given up');
      assert.equal((await nextOf(outcome.body) as { kind: string }).kind, 'cancelled');
    });
  });
}

describe('bulkhead layer', () => {
  it('refuses with 503 overloaded when the queue is full, and a waiter that leaves takes no slot', async () => {
    const clock = new ManualClock();
    const upstream = upstreamOf(clock, { bulkhead: { maxConcurrent: 1, maxQueue: 1, queueTimeout: '1s' } });
    const body = new DrivenStream();
    const handler = bulkhead(metrics)(innerGiving(streamOf(body), answer()));
    const first = await handler(requestTo(upstream), contextAt(clock));
    const leaver = contextAt(clock);
    const waiting = handler(requestTo(upstream), leaver);
    await settle();
    const refused = await handler(requestTo(upstream), contextAt(clock));
    assert.equal(refused.kind === 'local' && refused.code, 'overloaded');
    leaver.abort();
    assert.equal((await waiting).kind, 'cancelled');
    assert.equal(upstream.bulkhead.waiting, 0);
    if (first.kind === 'stream') first.body.cancel();
    assert.equal(upstream.bulkhead.active, 0);
  });

  it('lets a queued request in when a stream ahead of it ends', async () => {
    const clock = new ManualClock();
    const upstream = upstreamOf(clock, { bulkhead: { maxConcurrent: 1, maxQueue: 1, queueTimeout: '1s' } });
    const body = new DrivenStream();
    const inner = innerGiving(streamOf(body), answer());
    const handler = bulkhead(metrics)(inner);
    const first = await handler(requestTo(upstream), contextAt(clock));
    const second = handler(requestTo(upstream), contextAt(clock));
    await settle();
    assert.equal(inner.calls.length, 1, 'the second waits for the slot');
    body.end();
    await drain(first);
    assert.equal((await second).kind, 'answer');
    assert.equal(upstream.bulkhead.active, 0);
  });
});
