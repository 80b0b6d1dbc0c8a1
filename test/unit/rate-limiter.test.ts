import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ManualClock } from '../../sidecar/resilience/clock.js';
import { RateLimiter } from '../../sidecar/resilience/rate-limiter.js';

describe('rate limiter', () => {
  it('lets ten seconds\' worth of requests through at once, then one per 1/rate', () => {
    const clock = new ManualClock();
    const limiter = new RateLimiter({ requestsPerMinute: 60, tokensPerMinute: 0 }, clock);
    for (let i = 0; i < 10; i++) assert.equal(limiter.tryTake(0), 0);
    assert.equal(limiter.tryTake(0), 1000, 'the eleventh waits one second');
    clock.advance(1000);
    assert.equal(limiter.tryTake(0), 0);
  });

  it('budgets tokens, and corrects the estimate with the reported usage', () => {
    const clock = new ManualClock();
    const limiter = new RateLimiter({ requestsPerMinute: 0, tokensPerMinute: 6000 }, clock); // 100 tokens/s, burst 1000
    assert.equal(limiter.tryTake(600), 0);
    assert.equal(limiter.tryTake(600), 2000, '400 left: 200 more are 2 s away');
    limiter.adjust(-500); // the first answer used 100 tokens, not 600
    assert.equal(limiter.tryTake(600), 0);
  });

  it('reserves at most a bucket\'s worth, and runs into at most a minute\'s debt, whatever one request claims (red team, issue 25)', () => {
    const clock = new ManualClock();
    const limiter = new RateLimiter({ requestsPerMinute: 0, tokensPerMinute: 60_000 }, clock); // 1,000 tokens/s, burst 10,000
    assert.equal(limiter.reservation(1e12), 10_000, 'a max_tokens of 1e12 reserves one bucket');
    assert.equal(limiter.tryTake(limiter.reservation(1e12)), 0);
    limiter.adjust(1e15); // a usage no provider reports, past the 100-million cap the dialects already apply
    const wait = limiter.tryTake(1000);
    assert.ok(wait > 0 && wait <= 61_000, `waits at most a minute and the next request's worth, not ${wait} ms`);
    limiter.adjust(-1e15);
    assert.equal(limiter.tryTake(1000), 0, 'a refund fills the bucket, never past its capacity');
    assert.ok(limiter.tryTake(10_000) > 0, 'and no further');
  });

  it('is off at 0', () => {
    const limiter = new RateLimiter({ requestsPerMinute: 0, tokensPerMinute: 0 }, new ManualClock());
    assert.equal(limiter.enabled, false);
    for (let i = 0; i < 1000; i++) assert.equal(limiter.tryTake(1e6), 0);
  });
});
