/**
 * The sidecar injection as a pure, idempotent function: `injectSidecar(pod,
 * context)` returns the pod with Breakwater added (contract, "Pods") — a native
 * sidecar placed first among initContainers, with probes on the admin port, a
 * hardened securityContext, downward-API identity, a projected token for
 * audience breakwater.dev, an emptyDir for the last good config, and the
 * credentials of the Secrets its policy names, and the pod's tracing
 * settings (OTEL_*, tracing-env.ts); app containers get the
 * upstreams' env (never overriding a value set, in env or through envFrom)
 * and a preStop sleep; the grace
 * period covers sleep and drain. A pod that carries breakwater.dev/status is
 * returned unchanged.
 */
import type { V1Container, V1EnvVar, V1Pod } from '@kubernetes/client-node';
import { API_FAMILIES, parseDuration, secretEnvName, TOKEN_AUDIENCE, type PolicySpec } from '../api/index.js';
import { tracingEnv } from './tracing-env.js';

export const SIDECAR_NAME = 'breakwater-sidecar';
export const STATUS_ANNOTATION = 'breakwater.dev/status';
export const INJECT_KEY = 'breakwater.dev/inject';
/** The sidecar's log level for this pod (debug logs every request); anything but these four is ignored. */
const LOG_LEVEL_ANNOTATION = 'breakwater.dev/log-level';
const LOG_LEVELS = new Set(['debug', 'info', 'warn', 'error']);
export const DATA_PORT = 15001;
export const ADMIN_PORT = 15021;
const TOKEN_DIR = '/var/run/secrets/breakwater.dev';
const CACHE_DIR = '/var/run/breakwater';

export interface InjectionContext {
  image: string;
  /** The controller's config-stream URL(s), comma-separated. */
  controllerUrl: string;
  /** PEM of the CA that signed the controller's serving certificate. */
  controllerCa: string;
  /** The policy that selects the pod (a pod no policy selects is not injected). */
  policy: { name: string; spec: PolicySpec };
  /**
   * Per container, the variables its envFrom sources set (Kubernetes lets
   * `env` win over them, so the injector must not add those), or 'unknown'
   * when a source could not be read: then it adds none to that container.
   */
  setByEnvFrom?: ReadonlyMap<string, ReadonlySet<string> | 'unknown'>;
  /** The chart's tracing defaults (OTEL_* variables), under what the pod's own containers set (tracing-env.ts). */
  tracingEnv?: V1EnvVar[];
}

/** The base URL an app uses for an upstream: its family's base path (OpenAI clients expect /v1), unless the upstream's URL already ends with it. */
function baseUrlFor(upstream: PolicySpec['upstreams'][number]): string {
  const root = `http://127.0.0.1:${DATA_PORT}/${upstream.name}`;
  const upstreamPath = upstream.url ? new URL(upstream.url).pathname.replace(/\/+$/, '') : '';
  const base = API_FAMILIES[upstream.api ?? 'openai'].appBasePath;
  return base !== '' && !upstreamPath.endsWith(base) ? root + base : root;
}

function sidecarContainer(context: InjectionContext, logLevel: string | undefined, otel: readonly V1EnvVar[]): V1Container {
  const secretEnv: V1EnvVar[] = [];
  const refs = [...(context.policy.spec.upstreams ?? []).map((u) => u.auth?.secretRef), context.policy.spec.cache?.redis?.secretRef, context.policy.spec.sharedState?.redis?.secretRef];
  for (const ref of refs) {
    // optional: a missing Secret must not keep the pod from starting. The config stream carries the current values (rotation);
    // these are what the sidecar uses while it talks to a controller that sends none (an upgrade from an earlier release).
    if (ref) secretEnv.push({ name: secretEnvName(ref.name, ref.key), valueFrom: { secretKeyRef: { name: ref.name, key: ref.key, optional: true } } });
  }
  const probe = (path: string, periodSeconds: number, failureThreshold: number) => ({ httpGet: { path, port: ADMIN_PORT }, periodSeconds, failureThreshold, timeoutSeconds: 2 });
  return {
    name: SIDECAR_NAME,
    image: context.image,
    restartPolicy: 'Always',
    args: [
      'sidecar',
      '--controller', context.controllerUrl,
      '--token-file', `${TOKEN_DIR}/token`,
      '--config-cache', `${CACHE_DIR}/config.json`,
      '--state-file', `${CACHE_DIR}/state.json`,
      '--listen', `127.0.0.1:${DATA_PORT}`,
      '--admin', `0.0.0.0:${ADMIN_PORT}`,
    ],
    env: [
      { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
      { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
      { name: 'BREAKWATER_CONTROLLER_CA', value: context.controllerCa },
      ...(logLevel ? [{ name: 'BREAKWATER_LOG_LEVEL', value: logLevel }] : []),
      ...otel,
      ...secretEnv,
    ],
    ports: [{ name: 'bw-admin', containerPort: ADMIN_PORT }],
    startupProbe: probe('/readyz', 1, 60),
    readinessProbe: probe('/readyz', 5, 3),
    livenessProbe: probe('/healthz', 10, 3),
    resources: { requests: { cpu: '50m', memory: '96Mi' }, limits: { memory: '256Mi' } },
    securityContext: {
      runAsNonRoot: true,
      runAsUser: 65532,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    },
    volumeMounts: [
      { name: 'breakwater-token', mountPath: TOKEN_DIR, readOnly: true },
      { name: 'breakwater-cache', mountPath: CACHE_DIR },
    ],
  };
}

export function injectSidecar(original: V1Pod, context: InjectionContext): V1Pod {
  if (original.metadata?.annotations?.[STATUS_ANNOTATION]) return original;
  const pod = structuredClone(original);
  const spec = pod.spec!;
  const meta = (pod.metadata ??= {});
  const upstreams = context.policy.spec.upstreams ?? [];
  // An invalid policy comes as it was stored, without defaults: injection still reads it safely.
  const given: Partial<PolicySpec['shutdown']> = context.policy.spec.shutdown ?? {};
  const shutdown = { appPreStopSleep: given.appPreStopSleep ?? '5s', drainTimeout: given.drainTimeout ?? '30s' };
  const sleepSeconds = Math.ceil(parseDuration(shutdown.appPreStopSleep) / 1000);
  const drainSeconds = Math.ceil(parseDuration(shutdown.drainTimeout) / 1000);

  const logLevel = meta.annotations?.[LOG_LEVEL_ANNOTATION];
  const otel = tracingEnv(pod, context.tracingEnv ?? [], context.setByEnvFrom);
  spec.initContainers = [sidecarContainer(context, logLevel && LOG_LEVELS.has(logLevel) ? logLevel : undefined, otel.env), ...(spec.initContainers ?? [])];
  // The projected token needs a service account; 'default' is what the ServiceAccount admission plugin would set.
  spec.serviceAccountName ??= 'default';
  spec.volumes = [
    ...(spec.volumes ?? []),
    { name: 'breakwater-token', projected: { sources: [{ serviceAccountToken: { audience: TOKEN_AUDIENCE, expirationSeconds: 3600, path: 'token' } }] } },
    { name: 'breakwater-cache', emptyDir: { medium: 'Memory', sizeLimit: '8Mi' } },
  ];
  const injectedEnv = new Set<string>();
  for (const container of spec.containers) {
    const fromSources = context.setByEnvFrom?.get(container.name);
    const present = new Set([...(container.env ?? []).map((e) => e.name), ...(fromSources instanceof Set ? fromSources : [])]);
    for (const upstream of upstreams) {
      for (const name of upstream.env ?? []) {
        if (present.has(name) || fromSources === 'unknown') continue;
        (container.env ??= []).push({ name, value: baseUrlFor(upstream) });
        injectedEnv.add(name);
      }
    }
    if (!container.lifecycle?.preStop) (container.lifecycle ??= {}).preStop = { sleep: { seconds: sleepSeconds } };
  }
  const grace = sleepSeconds + drainSeconds + 5;
  if ((spec.terminationGracePeriodSeconds ?? 30) < grace) spec.terminationGracePeriodSeconds = grace;
  (meta.labels ??= {})['breakwater.dev/injected'] = 'true';
  (meta.annotations ??= {})[STATUS_ANNOTATION] = JSON.stringify({
    sidecar: SIDECAR_NAME,
    image: context.image,
    policy: context.policy.name,
    env: [...injectedEnv].sort(),
    // Whose OTEL_* the sidecar took, and what of them it could not (tracing-env.ts).
    ...(otel.from ? { tracingFrom: otel.from } : {}),
    ...(otel.skipped.length > 0 ? { tracingSkipped: otel.skipped } : {}),
  });
  return pod;
}

/** Whether a pod asks for injection (contract: namespace label, or pod label or annotation; "false" opts out). */
export function wantsInjection(pod: V1Pod, namespaceLabels: Record<string, string>): boolean {
  if (pod.spec?.hostNetwork) return false;
  const own = pod.metadata?.labels?.[INJECT_KEY] ?? pod.metadata?.annotations?.[INJECT_KEY];
  if (own === 'false') return false;
  return own === 'true' || namespaceLabels[INJECT_KEY] === 'enabled';
}
