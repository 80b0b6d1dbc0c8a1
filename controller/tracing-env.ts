/**
 * The tracing settings an injected sidecar gets: the standard OTEL_*
 * variables of where spans go and how they are sampled and batched. The
 * pod's own win, taken whole from one container so they stay consistent:
 * the first app container that sets an OTEL_EXPORTER_OTLP_* variable (in
 * `env`, or through `envFrom`), the one that exports traces itself, so the
 * sidecar's spans go where the app's do; its OTEL_SDK_DISABLED counts, not
 * another container's (one that turns its own SDK off says nothing of the
 * sidecar's). The chart's defaults fill in the rest (`tracing.*` values,
 * which reach the controller as BREAKWATER_SIDECAR_OTEL_*). Whether a pod is
 * traced at all is its policy's `tracing.enabled`.
 *
 * What is not passed: the service name and resource attributes (the sidecar
 * names itself); the TLS files (OTEL_EXPORTER_OTLP_*CERTIFICATE, *CLIENT_KEY:
 * paths into the app's volumes, which the sidecar does not mount). A value
 * that uses `$(VAR)` gets the definitions of the variables it names, from the
 * same container, placed before it (a value, fieldRef, resourceFieldRef or
 * configMapKeyRef; never a secretKeyRef, nor a name the sidecar sets or its
 * runtime reads); one whose reference cannot be given so is skipped, and
 * said so (`skipped`, in the pod's breakwater.dev/status). A variable set
 * through `envFrom` is followed as a reference to that one key, when only
 * one of the container's sources can have set it: the sidecar never gets the
 * other keys of a ConfigMap or Secret.
 */
import type { V1Container, V1EnvFromSource, V1EnvVar, V1Pod } from '@kubernetes/client-node';

/** The variables passed on: the exporter's, the sampler's, the batch processor's, and the two that turn the SDK off. */
const PASSED = /^OTEL_(EXPORTER_OTLP_[A-Z_]+|TRACES_SAMPLER|TRACES_SAMPLER_ARG|BSP_[A-Z_]+|SDK_DISABLED|TRACES_EXPORTER)$/;
/** Files in the app's volumes: not passed (TLS to a collector is the chart's endpoint, verified against the public CAs). */
const FILES = /^OTEL_EXPORTER_OTLP_(TRACES_)?(CERTIFICATE|CLIENT_KEY|CLIENT_CERTIFICATE)$/;
/** Names a copied reference must not have: the sidecar sets them, or Node, OpenSSL, gRPC or the OpenTelemetry SDK read them. */
const RESERVED = /^(NODE_|UV_|BREAKWATER_|OTEL_|GRPC_|SSL_|OPENSSL_|LD_)|^(PATH|HOME|TZ|HTTPS?_PROXY|NO_PROXY|POD_NAME|POD_NAMESPACE|POD_UID)$/i;
/** The sidecar's own downward-API variables: a reference to the same field needs no copy. */
const OWN: Record<string, string> = { POD_NAME: 'metadata.name', POD_NAMESPACE: 'metadata.namespace' };
const CHART_PREFIX = 'BREAKWATER_SIDECAR_';

const passed = (name: string) => PASSED.test(name) && !FILES.test(name);

/** The chart's defaults, from the controller's environment (BREAKWATER_SIDECAR_OTEL_* → OTEL_*; empty values are unset). */
export function chartTracingEnv(env: NodeJS.ProcessEnv): V1EnvVar[] {
  const out: V1EnvVar[] = [];
  for (const [key, value] of Object.entries(env)) {
    const name = key.slice(CHART_PREFIX.length);
    if (key.startsWith(CHART_PREFIX) && passed(name) && value) out.push({ name, value });
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

export interface TracingEnv {
  /** The sidecar's OTEL_* variables, with the definitions they refer to before them. */
  env: V1EnvVar[];
  /** The app container they were taken from, if any. */
  from?: string;
  /** What of that container's was not passed, and why. */
  skipped: string[];
}

type EnvFromNames = ReadonlyMap<string, ReadonlySet<string> | 'unknown'> | undefined;

/** The names `$(NAME)` in a value refers to, as Kubernetes expands them (`$$` escapes a `$`). */
export function referencesIn(value: string): string[] {
  const out: string[] = [];
  for (let i = value.indexOf('$'); i >= 0 && i < value.length; i = value.indexOf('$', i)) {
    if (value[i + 1] === '$') i += 2;
    else if (value[i + 1] === '(' && value.indexOf(')', i) > 0) {
      const close = value.indexOf(')', i);
      out.push(value.slice(i + 2, close));
      i = close + 1;
    } else i += 1;
  }
  return out;
}

/** One container's variables, read as Kubernetes would for it. */
class Source {
  readonly names: ReadonlySet<string> | 'unknown' | undefined;
  constructor(
    readonly container: V1Container,
    fromSources: EnvFromNames,
  ) {
    this.names = container.envFrom?.length ? (fromSources?.get(container.name) ?? 'unknown') : undefined;
  }

  /** The index of the last definition of `name` in env before `before`, or -1. */
  lastIn(name: string, before = Infinity): number {
    const env = this.container.env ?? [];
    for (let i = Math.min(before, env.length) - 1; i >= 0; i--) if (env[i]!.name === name) return i;
    return -1;
  }

  /** `name` as a reference to the one envFrom source that can have set it, or why not. */
  fromEnvFrom(name: string, secretAllowed: boolean): V1EnvVar | string {
    const candidates = (this.container.envFrom ?? []).filter((s: V1EnvFromSource) => (s.configMapRef ?? s.secretRef) && name.startsWith(s.prefix ?? ''));
    if (candidates.length !== 1) return `set through envFrom, by one of ${candidates.length} sources`;
    const [source] = candidates as [V1EnvFromSource];
    const key = name.slice((source.prefix ?? '').length);
    if (source.configMapRef) return { name, valueFrom: { configMapKeyRef: { name: source.configMapRef.name!, key, optional: true } } };
    if (!secretAllowed) return 'set from a Secret through envFrom';
    return { name, valueFrom: { secretKeyRef: { name: source.secretRef!.name!, key, optional: true } } };
  }

  /** The definitions that `$(name)`, used by the variable at `before`, needs in the sidecar (none: it expands there as in the app), or why it cannot have them. */
  definitionsOf(name: string, before: number, depth = 0): V1EnvVar[] | string {
    const at = this.lastIn(name, before);
    if (at < 0) {
      if (this.names instanceof Set && this.names.has(name)) {
        if (passed(name)) return wrap(this.fromEnvFrom(name, true)); // set before env, as Kubernetes does
        return RESERVED.test(name) ? `$(${name}) is a variable the sidecar keeps its own` : wrap(this.fromEnvFrom(name, false));
      }
      if (this.names === 'unknown') return `$(${name}) may come from an envFrom source that could not be read`;
      return []; // not this container's: Kubernetes leaves it, or it is a service's variable, which the sidecar has too
    }
    const def = this.container.env![at]!;
    if (passed(name)) return []; // passed itself, before its user
    if (OWN[name] !== undefined && def.valueFrom?.fieldRef?.fieldPath === OWN[name]) return [];
    if (RESERVED.test(name)) return `$(${name}) is a variable the sidecar keeps its own`;
    const from = def.valueFrom;
    if (from?.secretKeyRef) return `$(${name}) is a Secret's key`;
    if (from?.resourceFieldRef) return [{ name, valueFrom: { resourceFieldRef: { ...from.resourceFieldRef, containerName: from.resourceFieldRef.containerName ?? this.container.name } } }];
    if (from) return [structuredClone(def)];
    if (depth >= 4) return `$(${name}) refers too deep`;
    const needed: V1EnvVar[] = [];
    for (const ref of referencesIn(def.value ?? '')) {
      const defs = this.definitionsOf(ref, at, depth + 1);
      if (typeof defs === 'string') return defs;
      needed.push(...defs);
    }
    return [...needed, { name, value: def.value ?? '' }];
  }

  /** The passed variable `def` (the one at `at`), with what it refers to before it, or why it is skipped. */
  copy(def: V1EnvVar, at: number): V1EnvVar[] | string {
    const from = def.valueFrom;
    if (from?.resourceFieldRef) return [{ name: def.name, valueFrom: { resourceFieldRef: { ...from.resourceFieldRef, containerName: from.resourceFieldRef.containerName ?? this.container.name } } }];
    if (from) return [structuredClone(def)];
    const needed: V1EnvVar[] = [];
    for (const ref of referencesIn(def.value ?? '')) {
      const defs = this.definitionsOf(ref, at);
      if (typeof defs === 'string') return defs;
      needed.push(...defs);
    }
    return [...needed, { name: def.name, value: def.value ?? '' }];
  }

  /** Whether the container sets an exporter variable itself. */
  exports(): boolean {
    const named = (n: string) => passed(n) && n.startsWith('OTEL_EXPORTER_OTLP_');
    return (this.container.env ?? []).some((e) => named(e.name)) || (this.names instanceof Set && [...this.names].some(named));
  }
}

const wrap = (got: V1EnvVar | string): V1EnvVar[] | string => (typeof got === 'string' ? got : [got]);

/** The OTEL_* variables for the sidecar of `pod`: those of its first app container that sets an exporter variable, else the chart's. */
export function tracingEnv(pod: V1Pod, defaults: readonly V1EnvVar[], setByEnvFrom?: EnvFromNames): TracingEnv {
  const sources = (pod.spec?.containers ?? []).map((c) => new Source(c, setByEnvFrom));
  const source = sources.find((s) => s.exports());
  const chosen = new Map<string, V1EnvVar>();
  const skipped: string[] = [];
  if (source) {
    const env = source.container.env ?? [];
    env.forEach((def, at) => {
      if (!passed(def.name) || source.lastIn(def.name) !== at) return; // a later definition of the same name wins
      const copied = source.copy(def, at);
      if (typeof copied === 'string') return skipped.push(`${def.name}: ${copied}`);
      for (const v of copied) if (!chosen.has(v.name)) chosen.set(v.name, v);
    });
    if (source.names === 'unknown') skipped.push('envFrom: a source could not be read, so the OTEL_* variables it sets are not followed');
    else for (const name of source.names ?? []) {
      if (!passed(name) || source.lastIn(name) >= 0 || chosen.has(name)) continue;
      const followed = source.fromEnvFrom(name, true);
      if (typeof followed === 'string') skipped.push(`${name}: ${followed}`);
      else chosen.set(name, followed);
    }
  }
  for (const variable of defaults) if (!chosen.has(variable.name)) chosen.set(variable.name, variable);
  return { env: [...chosen.values()], from: source?.container.name, skipped };
}
