/** The adaptiveLimit layer and what it reads of an answer (provider-load.ts): each attempt moves its endpoint's limit. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { adaptiveLimit } from '../../../sidecar/proxy/layers/adaptive-limit.js';
import { providerLoad, quotaLow } from '../../../sidecar/proxy/upstream/provider-load.js';
import { UpstreamState, type Endpoint } from '../../../sidecar/proxy/upstream/upstream-state.js';
import { answer, compile, contextAt, DrivenStream, innerGiving, localFailure, ManualClock, metrics, requestTo, streamOf, upstreamOf } from '../../support/layer-kit.js';

describe('adaptive limit layer', () => {
  it('reads refusals, their Retry-After, good answers and quotas close to spent', () => {
    const refused = { ...answer(429, 'rate-limited'), headers: { 'retry-after': '2' } };
    assert.deepEqual(providerLoad(refused, 0), { kind: 'refused', retryAfterMs: 2000 });
    assert.deepEqual(providerLoad(answer(529, 'overloaded'), 0), { kind: 'refused', retryAfterMs: undefined });
    assert.deepEqual(providerLoad(answer(200), 0), { kind: 'served', quotaLow: false });
    assert.equal(providerLoad(answer(500, 'server-error'), 0), undefined, 'a server error is the breaker\'s business');
    assert.equal(providerLoad(localFailure('timeout'), 0), undefined);
    assert.equal(providerLoad(streamOf(new DrivenStream()), 0)?.kind, 'served');
    assert.ok(quotaLow({ 'x-ratelimit-remaining-requests': '4', 'x-ratelimit-limit-requests': '100' }));
    assert.ok(quotaLow({ 'anthropic-ratelimit-tokens-remaining': '10', 'anthropic-ratelimit-tokens-limit': '1000' }));
    assert.equal(quotaLow({ 'x-ratelimit-remaining-tokens': '900', 'x-ratelimit-limit-tokens': '1000' }), false);
  });

  it('grows the endpoint\'s limit on good first answers and cuts it on a 429, and the bulkhead follows', async () => {
    const clock = new ManualClock();
    const upstream = upstreamOf(clock, { bulkhead: { adaptive: { initial: 4, min: 1, max: 100 } } });
    const endpoint = upstream.endpoints[0]!;
    assert.equal(upstream.bulkhead.limit, 4);
    assert.ok(adaptiveLimit(clock).enabledFor!(upstream.config));
    const ok = adaptiveLimit(clock)(innerGiving(answer(200)));
    endpoint.outstanding = 4; // the limit is in use
    for (let i = 0; i < 4; i++) await ok(requestTo(upstream), contextAt(clock));
    const grown = upstream.bulkhead.limit;
    assert.ok(grown >= 8 && grown <= 10, `slow start about doubles it: ${grown}`);
    clock.advance(1);
    const refused = adaptiveLimit(clock)(innerGiving({ ...answer(429, 'rate-limited'), headers: { 'retry-after': '1' } }));
    endpoint.outstanding = 6;
    for (let i = 0; i < 6; i++) upstream.bulkhead.tryAcquire(1);
    await refused(requestTo(upstream), contextAt(clock));
    // 90% of the limit at which the bulkhead would have let in only the 5 others the provider held (the default
    // classes keep 25% for critical: at 6, normal may hold 5; at 7, 6): 90% of 6.
    const cut = upstream.bulkhead.limit;
    assert.equal(cut, Math.floor(0.9 * 6), `cut to ${cut} from ${grown}`);
    assert.equal(upstream.bulkhead.limitFor(1, 5), 6);
    assert.equal(upstream.endpoints[0]!.limit!.phase, 'probing');
  });

  it('is not in the stack of a fixed bulkhead', () => {
    const clock = new ManualClock();
    assert.equal(adaptiveLimit(clock).enabledFor!(upstreamOf(clock, { bulkhead: { maxConcurrent: 8 } }).config), false);
    assert.equal(adaptiveLimit(clock).enabledFor!(upstreamOf(clock, { bulkhead: { mode: 'fixed' } }).config), false);
  });

  it('sends the next attempt to an endpoint with room before one at its limit, whatever the balancer prefers', () => {
    const clock = new ManualClock();
    const upstream = upstreamOf(clock, { url: undefined, endpoints: [{ url: 'http://127.0.0.1:9' }, { url: 'http://127.0.0.2:9' }], loadBalancing: 'least-outstanding', bulkhead: { adaptive: { initial: 8, min: 2, max: 100 } } });
    const [big, small] = upstream.endpoints as [Endpoint, Endpoint];
    small.limit!.refused(clock.now(), 2, 2, undefined, 4); // a server that takes 2
    const limit = small.limit!.limit;
    small.outstanding = limit;
    big.outstanding = big.limit!.limit - 1; // room, but more outstanding: least-outstanding would pick the small one
    assert.ok(big.outstanding > small.outstanding, `${big.outstanding} > ${small.outstanding}`);
    const choice = upstream.choose('m');
    assert.ok(choice.ok && choice.endpoint === big, 'the small server is at its limit: the big one, with room');
    small.outstanding = limit - 1;
    const next = upstream.choose('m');
    assert.ok(next.ok && next.endpoint === small, 'with room again, the balancer\'s order');
  });

  it('keeps what an endpoint\'s limit learnt across a reload that changes another setting of its upstream', () => {
    const clock = new ManualClock();
    const spec = (total: string) => ({ upstreams: [{ name: 'p', url: 'http://127.0.0.1:9', timeouts: { total }, bulkhead: { adaptive: { initial: 32, min: 1, max: 100 } } }] });
    const before = upstreamOf(clock, {}, spec('60s'), 'p');
    before.endpoints[0]!.limit!.refused(clock.now(), 8, 8, undefined, 10); // learnt: the provider holds 8
    const learnt = before.endpoints[0]!.limit!.limit;
    assert.ok(learnt < 32);
    const config = compile(spec('90s'));
    const after = new UpstreamState(config.upstreams.get('p')!, 'p2', config.priorities.classes, clock, metrics, () => {}, () => {}, before);
    assert.equal(after.endpoints[0]!.limit!.limit, learnt, 'not back to initial (32)');
    assert.equal(after.bulkhead.limit, learnt);
    assert.equal(after.endpoints[0]!.limit!.phase, 'probing');
  });
});
