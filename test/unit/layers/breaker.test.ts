/**
 * The breaker layer settles each permit exactly once: an outcome recorded
 * when there is one (for a stream, when it ends), the permit given back
 * without one when the app left, a layer threw, or the stream was abandoned.
 * Probed on a half-open breaker with one probe slot, where a leaked permit
 * wedges the breaker and a doubly released one lets two probes through.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AttemptRequest, Outcome } from '../../../sidecar/proxy/handler.js';
import { breaker } from '../../../sidecar/proxy/layers/breaker.js';
import { answer, contextAt, drain, DrivenStream, innerGiving, localFailure, ManualClock, requestTo, streamOf, upstreamOf } from '../../support/layer-kit.js';

const SETTINGS = { circuitBreaker: { scope: 'upstream', consecutiveFailures: 1, openFor: '1s', halfOpen: { maxProbes: 1, successesToClose: 2 } } };

/** A half-open breaker on a fresh upstream, with the layer around `inner`. */
function halfOpen(inner: ReturnType<typeof innerGiving>) {
  const clock = new ManualClock();
  const upstream = upstreamOf(clock, SETTINGS);
  const circuit = upstream.breakerFor(undefined);
  const admission = circuit.tryAcquire();
  if (!admission.ok) throw new Error('closed breaker refused');
  circuit.record(admission.permit, { failure: true, durationMs: 1 });
  clock.advance(1000);
  assert.equal(circuit.stateName, 'half-open');
  return { clock, upstream, circuit, call: () => breaker(clock)(inner)(requestTo(upstream), contextAt(clock)) };
}

/** How many probes the breaker lets through now (each taken and given back without an outcome). */
function freeProbes(circuit: ReturnType<ReturnType<typeof upstreamOf>['breakerFor']>): number {
  const permits = [circuit.tryAcquire(), circuit.tryAcquire()];
  for (const p of permits) if (p.ok) circuit.release(p.permit);
  return permits.filter((p) => p.ok).length;
}

describe('breaker layer: one settlement per permit', () => {
  const cases: [string, Outcome | Error, 'half-open' | 'open'][] = [
    ['a success (recorded; not enough to close)', answer(), 'half-open'],
    ['a failure (recorded: re-opens)', answer(500, 'server-error'), 'open'],
    ['a transport failure (recorded: re-opens)', localFailure('reset'), 'open'],
    ['a client error (recorded as no failure)', answer(400, 'client-error'), 'half-open'],
    ['the app leaving (given back)', { kind: 'cancelled' }, 'half-open'],
    ['a throw below (given back)', new Error('boom'), 'half-open'],
  ];
  for (const [what, outcome, state] of cases) {
    it(`after ${what}`, async () => {
      const { circuit, call } = halfOpen(innerGiving(outcome));
      if (outcome instanceof Error) await assert.rejects(call());
      else await call();
      assert.equal(circuit.stateName, state);
      if (state === 'half-open') assert.equal(freeProbes(circuit), 1, 'exactly one probe slot is free again');
    });
  }

  it('holds the permit while a stream is open, records a success when it completes', async () => {
    const body = new DrivenStream();
    const { circuit, call } = halfOpen(innerGiving(streamOf(body)));
    const outcome = await call();
    assert.equal(freeProbes(circuit), 0, 'the probe is still out');
    body.end();
    await drain(outcome);
    assert.equal(circuit.stateName, 'half-open');
    assert.equal(freeProbes(circuit), 1);
  });

  it('records a stream that breaks as a failure', async () => {
    const body = new DrivenStream();
    const { circuit, call } = halfOpen(innerGiving(streamOf(body)));
    const outcome = await call();
    body.fail('reset');
    await drain(outcome);
    assert.equal(circuit.stateName, 'open');
  });

  it('gives the permit back once when a stream is abandoned, however often it is cancelled', async () => {
    const body = new DrivenStream();
    const { circuit, call } = halfOpen(innerGiving(streamOf(body)));
    const outcome = await call();
    assert.equal(outcome.kind, 'stream');
    if (outcome.kind === 'stream') {
      outcome.body.cancel();
      outcome.body.cancel();
    }
    assert.equal(circuit.stateName, 'half-open');
    assert.equal(freeProbes(circuit), 1);
  });

  it('refuses with circuit_open, without calling in, while the breaker is open', async () => {
    const inner = innerGiving(answer(500, 'server-error'));
    const { circuit, call } = halfOpen(inner);
    await call();
    assert.equal(circuit.stateName, 'open');
    const refused = await call();
    assert.equal(refused.kind === 'local' && refused.code, 'circuit_open');
    assert.equal(refused.kind === 'local' && refused.refusedBy, 'breaker', 'a typed refusal: no attempt was made');
    assert.equal(inner.calls.length, 1);
  });

  it('sends the attempt to the endpoint it chose', async () => {
    const clock = new ManualClock();
    const upstream = upstreamOf(clock, {}, { upstreams: [{ name: 'primary', endpoints: [{ url: 'http://127.0.0.1:9' }, { url: 'http://127.0.0.2:9' }], loadBalancing: 'round-robin' }] });
    const inner = innerGiving<AttemptRequest>(answer());
    const layer = breaker(clock)(inner);
    await layer(requestTo(upstream, { endpoint: undefined }), contextAt(clock));
    await layer(requestTo(upstream, { endpoint: undefined }), contextAt(clock));
    assert.deepEqual(inner.calls.map((r) => r.endpoint?.index), [0, 1]);
  });
});
