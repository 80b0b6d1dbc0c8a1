/**
 * Authenticates a sidecar by its projected service-account token: a
 * TokenReview with audience breakwater.dev must say the token is valid and
 * bound to a pod. Every token costs the API server a TokenReview, so:
 * answers are cached by a hash of the token (never the token itself), good
 * ones for 30 s and rejections for 10 s; a token longer than any real one is
 * refused unread; and each source address other than loopback may cause at
 * most a few reviews a second, past which it is told to come back later
 * (TooManyReviews).
 */
import { createHash } from 'node:crypto';
import { AuthenticationV1Api, type KubeConfig, type V1TokenReviewStatus } from '@kubernetes/client-node';
import { LRUCache } from 'lru-cache';
import { TOKEN_AUDIENCE } from '../api/index.js';

export interface PodIdentity {
  namespace: string;
  pod: string;
  serviceAccount: string;
}

export type Authenticate = (token: string, source: string) => Promise<PodIdentity | undefined>;

/** A source asked for more reviews than it may; `retryAfterMs` says when it may ask again. */
export class TooManyReviews extends Error {
  constructor(readonly retryAfterMs: number) {
    super('too many token reviews from this address');
  }
}

const POD_NAME = 'authentication.kubernetes.io/pod-name';
/** Projected tokens are ~1 KiB; anything this long is not one. */
const MAX_TOKEN_CHARS = 16 * 1024;
/** Reviews a source may cause: a burst, refilled at a rate per second. */
const SOURCE_BURST = 20;
const SOURCE_PER_SECOND = 5;
const LOOPBACK = /^(127\.|::1$|::ffff:127\.)/;

export interface ReviewerOptions {
  /** Asks the API server about one token. */
  review(token: string): Promise<V1TokenReviewStatus | undefined>;
  now?: () => number;
  goodForMs?: number;
  badForMs?: number;
}

/** The TokenReview call of a real API server. */
export function kubeTokenReview(kc: KubeConfig): ReviewerOptions['review'] {
  const api = kc.makeApiClient(AuthenticationV1Api);
  return async (token) =>
    (await api.createTokenReview({ body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, audiences: [TOKEN_AUDIENCE] } } })).status;
}

function identityOf(status: V1TokenReviewStatus | undefined): PodIdentity | undefined {
  const username = status?.user?.username ?? '';
  const pod = status?.user?.extra?.[POD_NAME]?.[0];
  const [, , namespace, serviceAccount] = username.split(':');
  if (!status?.authenticated || !status.audiences?.includes(TOKEN_AUDIENCE) || !username.startsWith('system:serviceaccount:') || !pod || !namespace || !serviceAccount) {
    return undefined;
  }
  return { namespace, pod, serviceAccount };
}

export function tokenReviewer({ review, now = Date.now, goodForMs = 30_000, badForMs = 10_000 }: ReviewerOptions): Authenticate {
  const answers = new LRUCache<string, { identity: PodIdentity | undefined; until: number }>({ max: 10_000 });
  const budgets = new LRUCache<string, { tokens: number; at: number }>({ max: 10_000 });
  return async (token, source) => {
    if (token.length > MAX_TOKEN_CHARS) return undefined;
    const key = createHash('sha256').update(token).digest('hex');
    const hit = answers.get(key);
    if (hit && hit.until > now()) return hit.identity;
    // Pods never connect from loopback: that is the controller's own pod (or a test or benchmark fleet on one machine).
    if (!LOOPBACK.test(source)) takeFrom(source);
    const identity = identityOf(await review(token));
    answers.set(key, { identity, until: now() + (identity ? goodForMs : badForMs) });
    return identity;
  };

  function takeFrom(source: string): void {
    const budget = budgets.get(source) ?? { tokens: SOURCE_BURST, at: now() };
    budget.tokens = Math.min(SOURCE_BURST, budget.tokens + ((now() - budget.at) / 1000) * SOURCE_PER_SECOND);
    budget.at = now();
    budgets.set(source, budget);
    if (budget.tokens < 1) throw new TooManyReviews(((1 - budget.tokens) / SOURCE_PER_SECOND) * 1000);
    budget.tokens -= 1;
  }
}
