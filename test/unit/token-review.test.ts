/**
 * TokenReview amplification: a bogus bearer token used to cost one
 * TokenReview on the API server every time. Rejections are now remembered
 * for a while, tokens too long to be real are refused unread, and each
 * source address may cause only a few reviews a second.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { V1TokenReviewStatus } from '@kubernetes/client-node';
import { TooManyReviews, tokenReviewer } from '../../controller/token-review.js';

const VALID: V1TokenReviewStatus = {
  authenticated: true,
  audiences: ['breakwater.dev'],
  user: { username: 'system:serviceaccount:shop:chatbot', extra: { 'authentication.kubernetes.io/pod-name': ['chatbot-1'] } },
};

function counting(answer: (token: string) => V1TokenReviewStatus | undefined) {
  const reviewed: string[] = [];
  return { reviewed, review: async (token: string) => (reviewed.push(token), answer(token)) };
}

describe('token reviewer', () => {
  it('reviews the same bogus token once while its rejection is remembered', async () => {
    let now = 0;
    const api = counting(() => ({ authenticated: false }));
    const authenticate = tokenReviewer({ review: api.review, now: () => now });
    for (let i = 0; i < 10; i++) assert.equal(await authenticate('bogus', '10.0.0.1'), undefined);
    assert.equal(api.reviewed.length, 1);
    now += 10_001;
    await authenticate('bogus', '10.0.0.1');
    assert.equal(api.reviewed.length, 2, 'reviewed again once the rejection is forgotten');
  });

  it('remembers a good token for longer, and tells its pod', async () => {
    const api = counting(() => VALID);
    const authenticate = tokenReviewer({ review: api.review, now: () => 0 });
    assert.deepEqual(await authenticate('good', '10.0.0.1'), { namespace: 'shop', pod: 'chatbot-1', serviceAccount: 'chatbot' });
    await authenticate('good', '10.0.0.2');
    assert.equal(api.reviewed.length, 1);
  });

  it('refuses a token too long to be real without a review', async () => {
    const api = counting(() => VALID);
    assert.equal(await tokenReviewer({ review: api.review })('x'.repeat(100_000), '10.0.0.1'), undefined);
    assert.equal(api.reviewed.length, 0);
  });

  it('lets one address cause only a burst of reviews, then a few a second, while others are unaffected', async () => {
    let now = 0;
    const api = counting(() => ({ authenticated: false }));
    const authenticate = tokenReviewer({ review: api.review, now: () => now });
    let limited = 0;
    for (let i = 0; i < 100; i++) {
      try {
        await authenticate(`bogus-${i}`, '10.0.0.66');
      } catch (err) {
        assert.ok(err instanceof TooManyReviews);
        assert.ok(err.retryAfterMs > 0);
        limited++;
      }
    }
    assert.equal(api.reviewed.length, 20, 'a burst of 20');
    assert.equal(limited, 80);
    assert.equal(await authenticate('bogus-other', '10.0.0.7'), undefined, 'another address still gets its review');
    now += 1000;
    await authenticate('bogus-later', '10.0.0.66');
    assert.equal(api.reviewed.length, 22, 'five a second refill');
    for (let i = 0; i < 50; i++) await authenticate(`local-${i}`, '127.0.0.1');
    assert.equal(api.reviewed.length, 72, 'loopback (the controller\'s own pod, tests) is not limited');
  });
});
