/**
 * The mutating admission webhook for pods (admission.k8s.io/v1). It decides
 * whether a pod asks for Breakwater, injects it, and answers with the JSON
 * patch from the pod as sent to the pod as injected. It never blocks a pod:
 * any failure admits the pod unchanged (and is logged), and the namespace
 * lookup has a short timeout after which only the pod's own opt-in counts.
 */
import type { CoreV1Api, V1Pod } from '@kubernetes/client-node';
import fastJsonPatch from 'fast-json-patch';
import type { Logger } from 'pino';
import { injectSidecar, wantsInjection, type InjectionContext } from './injection.js';

interface AdmissionReview {
  apiVersion: string;
  kind: string;
  request?: { uid: string; namespace?: string; object?: V1Pod };
}

const NAMESPACE_LOOKUP_MS = 2000;
const NAMESPACE_CACHE_MS = 30_000;

export function admissionHandler(deps: { core: CoreV1Api; context: (pod: V1Pod, namespace: string) => InjectionContext; log: Logger }) {
  const namespaces = new Map<string, { labels: Record<string, string>; until: number }>();
  const namespaceLabels = async (name: string): Promise<Record<string, string>> => {
    const hit = namespaces.get(name);
    if (hit && hit.until > Date.now()) return hit.labels;
    const lookup = deps.core.readNamespace({ name }).then((ns) => ns.metadata?.labels ?? {});
    const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('namespace lookup timed out')), NAMESPACE_LOOKUP_MS).unref());
    const labels = await Promise.race([lookup, timeout]);
    namespaces.set(name, { labels, until: Date.now() + NAMESPACE_CACHE_MS });
    return labels;
  };

  return async (review: AdmissionReview): Promise<AdmissionReview & { response: Record<string, unknown> }> => {
    const request = review.request;
    const answer = (patch?: unknown[]) => ({
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      response: {
        uid: request?.uid ?? '',
        allowed: true,
        ...(patch && patch.length > 0 ? { patchType: 'JSONPatch', patch: Buffer.from(JSON.stringify(patch)).toString('base64') } : {}),
      },
    });
    const pod = request?.object;
    const namespace = request?.namespace ?? pod?.metadata?.namespace;
    if (!pod || !namespace) return answer();
    try {
      const labels = await namespaceLabels(namespace).catch((err: unknown) => {
        deps.log.warn({ namespace, err: (err as Error).message }, 'namespace lookup failed; only the pod\'s own opt-in counts');
        return {};
      });
      if (!wantsInjection(pod, labels)) return answer();
      const injected = injectSidecar(pod, deps.context(pod, namespace));
      return answer(fastJsonPatch.compare(pod, injected));
    } catch (err) {
      deps.log.error({ namespace, err: (err as Error).message }, 'injection failed; the pod is admitted unchanged');
      return answer();
    }
  };
}
