/**
 * Authenticates a sidecar by its projected service-account token: a
 * TokenReview with audience breakwater.dev must say the token is valid and
 * bound to a pod. Answers are cached briefly (by a hash of the token, never
 * the token itself) so reconnect storms do not become TokenReview storms.
 */
import { createHash } from 'node:crypto';
import { AuthenticationV1Api, type KubeConfig } from '@kubernetes/client-node';
import { TOKEN_AUDIENCE } from '../api/index.js';

export interface PodIdentity {
  namespace: string;
  pod: string;
  serviceAccount: string;
}

export type Authenticate = (token: string) => Promise<PodIdentity | undefined>;

const POD_NAME = 'authentication.kubernetes.io/pod-name';

export function tokenReviewer(kc: KubeConfig, cacheMs = 30_000): Authenticate {
  const api = kc.makeApiClient(AuthenticationV1Api);
  const cache = new Map<string, { identity: PodIdentity; until: number }>();
  return async (token) => {
    const key = createHash('sha256').update(token).digest('hex');
    const hit = cache.get(key);
    if (hit && hit.until > Date.now()) return hit.identity;
    const review = await api.createTokenReview({
      body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, audiences: [TOKEN_AUDIENCE] } },
    });
    const status = review.status;
    const username = status?.user?.username ?? '';
    const pod = status?.user?.extra?.[POD_NAME]?.[0];
    const [, , namespace, serviceAccount] = username.split(':');
    if (!status?.authenticated || !status.audiences?.includes(TOKEN_AUDIENCE) || !username.startsWith('system:serviceaccount:') || !pod || !namespace || !serviceAccount) {
      return undefined;
    }
    const identity = { namespace, pod, serviceAccount };
    if (cache.size > 10_000) cache.clear();
    cache.set(key, { identity, until: Date.now() + cacheMs });
    return identity;
  };
}
