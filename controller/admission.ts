/**
 * The mutating admission webhook for pods (admission.k8s.io/v1). It decides
 * whether a pod asks for Breakwater, injects it, and answers with the JSON
 * patch from the pod as sent to the pod as injected. It never blocks a pod:
 * any failure admits the pod unchanged (and is logged), and the namespace
 * lookup has a short timeout after which only the pod's own opt-in counts.
 * A pod that asks but that no policy selects is admitted unchanged too: a
 * sidecar without a config would never become ready, and its app would
 * never start.
 */
import type { CoreV1Api, V1Pod } from '@kubernetes/client-node';
import fastJsonPatch from 'fast-json-patch';
import type { Logger } from 'pino';
import { injectSidecar, wantsInjection, type InjectionContext } from './injection.js';

type PolicyChoice = NonNullable<InjectionContext['policy']>;

interface AdmissionReview {
  apiVersion: string;
  kind: string;
  request?: { uid: string; namespace?: string; object?: V1Pod };
}

const NAMESPACE_LOOKUP_MS = 2000;
const NAMESPACE_CACHE_MS = 30_000;

/** Resolves within `ms` or rejects. */
function within<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what} timed out`)), ms).unref());
  return Promise.race([work, timeout]);
}

/**
 * The variables each container's envFrom sources set (keys of the ConfigMaps
 * and Secrets, with the source's prefix; a Secret's values are never read
 * out), or 'unknown' for a container one of whose sources could not be read.
 */
async function envFromKeys(core: CoreV1Api, pod: V1Pod, namespace: string): Promise<Map<string, ReadonlySet<string> | 'unknown'>> {
  const out = new Map<string, ReadonlySet<string> | 'unknown'>();
  for (const container of pod.spec?.containers ?? []) {
    if (!container.envFrom?.length) continue;
    const keys = new Set<string>();
    try {
      for (const source of container.envFrom) {
        const ref = source.configMapRef ?? source.secretRef;
        if (!ref?.name) continue;
        const read = source.configMapRef
          ? core.readNamespacedConfigMap({ name: ref.name, namespace }).then((cm) => [...Object.keys(cm.data ?? {}), ...Object.keys(cm.binaryData ?? {})])
          : core.readNamespacedSecret({ name: ref.name, namespace }).then((secret) => Object.keys(secret.data ?? {}));
        const names = await within(read, NAMESPACE_LOOKUP_MS, `reading ${ref.name}`).catch((err: { code?: number }) => {
          if (err.code === 404 && ref.optional) return [];
          throw err;
        });
        for (const name of names) keys.add((source.prefix ?? '') + name);
      }
      out.set(container.name, keys);
    } catch {
      out.set(container.name, 'unknown');
    }
  }
  return out;
}

export interface AdmissionDeps {
  core: CoreV1Api;
  /** What every injection carries: image, controller URL and CA. */
  context: () => Omit<InjectionContext, 'policy' | 'setByEnvFrom'>;
  /** The policy that selects the pod (bounded here by a short timeout), or undefined. */
  policyFor: (pod: V1Pod, namespace: string) => Promise<PolicyChoice | undefined>;
  log: Logger;
}

export function admissionHandler(deps: AdmissionDeps) {
  const namespaces = new Map<string, { labels: Record<string, string>; until: number }>();
  const namespaceLabels = async (name: string): Promise<Record<string, string>> => {
    const hit = namespaces.get(name);
    if (hit && hit.until > Date.now()) return hit.labels;
    const labels = await within(deps.core.readNamespace({ name }).then((ns) => ns.metadata?.labels ?? {}), NAMESPACE_LOOKUP_MS, 'namespace lookup');
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
      const policy = await within(deps.policyFor(pod, namespace), NAMESPACE_LOOKUP_MS, 'policy lookup');
      if (!policy) {
        const name = pod.metadata?.name ?? pod.metadata?.generateName ?? '';
        deps.log.warn({ namespace, pod: name.slice(0, 253) }, 'no ResiliencePolicy selects this pod; it is admitted without a sidecar');
        return answer();
      }
      const setByEnvFrom = await envFromKeys(deps.core, pod, namespace);
      for (const [container, keys] of setByEnvFrom) {
        if (keys === 'unknown') deps.log.warn({ namespace, container }, 'an envFrom source could not be read; no base URL is set in that container');
      }
      const injected = injectSidecar(pod, { ...deps.context(), policy, setByEnvFrom });
      return answer(fastJsonPatch.compare(pod, injected));
    } catch (err) {
      deps.log.error({ namespace, err: (err as Error).message }, 'injection failed; the pod is admitted unchanged');
      return answer();
    }
  };
}
