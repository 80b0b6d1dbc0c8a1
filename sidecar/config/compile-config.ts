/**
 * Compiles a validated policy spec into the sidecar's runtime config
 * (runtime-config.ts): settings merged per upstream (built-in ←
 * spec.defaults ← own), durations in milliseconds, sizes in bytes, class
 * lists as sets, credentials resolved (a Secret key's from what the
 * controller said of it: api/protocol.ts).
 */
import { readFileSync } from 'node:fs';
import {
  API_FAMILIES,
  credentialKey,
  credentialValue,
  mergeSettings,
  parseDuration,
  parseSize,
  secretEnvName,
  type ConfigVersion,
  type FullSettings,
  type PolicySpec,
  type SnapshotCredentials,
  type UpstreamSpec,
} from '../../api/index.js';
import { compileInputGuards } from './input-guards.js';
import { compilePrices } from './prices.js';
import type { BudgetConfig, ContinuationStyle, EndpointConfig, FallbackTierConfig, RuntimeConfig, SharedStoreConfig, SloConfig, UpstreamConfig } from './runtime-config.js';

/**
 * `auto` by API family (api/api-families.ts): Anthropic and Ollama continue a trailing assistant message;
 * OpenAI's own API does not (vLLM, llama.cpp and other servers that speak it are declared in the policy).
 */
function continuationOf({ streamRecovery: { continuation }, api }: UpstreamSpec): ContinuationStyle {
  return continuation === 'auto' ? API_FAMILIES[api].continuation : continuation;
}

function sloOf(slo: PolicySpec['slo']): SloConfig | undefined {
  const config = {
    windowMs: parseDuration(slo.window),
    availability: Number(slo.availability.objective) / 100,
    timeToFirstToken: { thresholdMs: parseDuration(slo.timeToFirstToken.threshold), objective: Number(slo.timeToFirstToken.objective) / 100 },
  };
  return config.availability > 0 || config.timeToFirstToken.objective > 0 ? config : undefined;
}

/**
 * A Secret key's credential, or why there is none: from what the controller said of it (`from`, a
 * snapshot's credential fields, which follow a rotation, a deletion and a label taken off), or, only
 * from a controller that sends no credentials (an earlier release), as the injector handed it over when
 * the pod was created (an environment variable). Keys are looked up as own keys only, so one named like
 * an Object.prototype member (`constructor`, `__proto__`) is missing like any other.
 */
function secretCredential(ref: { name: string; key: string }, from: SnapshotCredentials | undefined): { value: string; problem?: undefined } | { value?: undefined; problem: string } {
  const key = credentialKey(ref);
  const usable = (raw: string) => {
    const checked = credentialValue(raw);
    return checked.problem === undefined ? checked : { problem: `is not usable: ${checked.problem}` };
  };
  if (from?.credentials === undefined) {
    const env = process.env[secretEnvName(ref.name, ref.key)];
    return env === undefined ? { problem: 'does not exist' } : usable(env);
  }
  if (Object.hasOwn(from.credentials, key)) return usable(from.credentials[key]!);
  if (from.credentialProblems && Object.hasOwn(from.credentialProblems, key)) return { problem: from.credentialProblems[key]! };
  if (from.unreadCredentials?.includes(key)) return { problem: 'has not been read by the controller yet' };
  return { problem: 'does not exist' };
}

function resolveAuth(auth: UpstreamSpec['auth'], from: SnapshotCredentials | undefined): UpstreamConfig['auth'] {
  if (!auth) return undefined;
  if (auth.secretRef) {
    // A Secret that cannot be used yet is no reason to refuse the policy: that upstream waits for it, the others serve.
    const secret = secretCredential(auth.secretRef, from);
    if (secret.problem !== undefined) return { header: auth.header, missing: `Secret ${auth.secretRef.name}, key ${auth.secretRef.key}`, problem: secret.problem };
    return { header: auth.header, value: auth.prefix + secret.value };
  }
  const secret = auth.env !== undefined ? process.env[auth.env] : readFileSync(auth.file!, 'utf8').trim();
  if (!secret) throw new Error(`credential for auth is empty or missing (${auth.env ? `env ${auth.env}` : `file ${auth.file}`})`);
  return { header: auth.header, value: auth.prefix + secret };
}

/** Whether limits with this `scope` are the fleet's: as written, else the fleet's once the policy names a shared store. */
const fleetScoped = (spec: PolicySpec, scope: 'pod' | 'fleet' | undefined) => (scope ?? (spec.sharedState ? 'fleet' : 'pod')) === 'fleet';

/** A budget's limits, or undefined when it limits nothing. */
function budgetOf(spec: PolicySpec, budget: PolicySpec['budget']): BudgetConfig | undefined {
  const limits = { window: budget.window, tokens: budget.tokens, cost: Number(budget.cost), fleet: fleetScoped(spec, budget.scope) };
  return limits.tokens > 0 || limits.cost > 0 ? limits : undefined;
}

/** The Redis named by `redis` (url and password from its Secret), or undefined without one. */
function storeOf(redis: { url: string; secretRef?: { name: string; key: string } } | undefined, credentials: SnapshotCredentials | undefined): SharedStoreConfig | undefined {
  if (!redis?.url) return undefined;
  return { url: redis.url, password: redis.secretRef ? secretCredential(redis.secretRef, credentials).value : undefined };
}

/**
 * The bulkhead: adaptive unless `mode` says fixed, or maxConcurrent is set without a mode (as written before the
 * adaptive mode: a fixed limit). Of adaptive bounds crossed between defaults and the upstream, the upstream's wins.
 */
function bulkheadOf(spec: PolicySpec, upstream: UpstreamSpec, b: FullSettings['bulkhead']): UpstreamConfig['bulkhead'] {
  const [own, a] = [[upstream.bulkhead, spec.defaults?.bulkhead], b.adaptive];
  const mode = own.find((x) => x?.mode !== undefined)?.mode ?? (own.some((x) => x?.maxConcurrent !== undefined) ? 'fixed' : b.mode);
  const fixed = { maxConcurrent: b.maxConcurrent, maxQueue: b.maxQueue, queueTimeoutMs: parseDuration(b.queueTimeout), fairBy: b.fairBy.header.toLowerCase() || undefined };
  if (mode === 'fixed') return fixed;
  const [min, max] = upstream.bulkhead?.adaptive?.max !== undefined && upstream.bulkhead.adaptive.min === undefined ? [Math.min(a.min, a.max), a.max] : [a.min, Math.max(a.max, a.min)];
  return { ...fixed, maxConcurrent: max, adaptive: { min, max, initial: Math.min(max, Math.max(min, a.initial)) } };
}

function compileUpstream(spec: PolicySpec, upstream: UpstreamSpec, credentials: SnapshotCredentials | undefined): UpstreamConfig {
  const s = mergeSettings(spec.defaults, upstream);
  const endpoint = (text: string, weight: number): EndpointConfig => {
    const url = new URL(text);
    return { origin: url.origin, basePath: url.pathname.replace(/\/+$/, ''), weight };
  };
  const cb = s.circuitBreaker;
  const fallback = upstream.fallback.map((tier): FallbackTierConfig => {
    const when = tier.when ? new Set<string>(tier.when) : undefined;
    if (tier.upstream !== undefined) return { kind: 'upstream', upstream: tier.upstream, model: tier.model, when };
    if (tier.cache !== undefined) return { kind: 'cache', when };
    return { kind: 'static', message: tier.static!.message, when };
  });
  const emergencyServes = new Set<string>(spec.degradation.emergency.serve);
  return {
    name: upstream.name,
    api: upstream.api,
    endpoints: upstream.url !== undefined ? [endpoint(upstream.url, 1)] : upstream.endpoints!.map((e) => endpoint(e.url, e.weight)),
    loadBalancing: upstream.loadBalancing,
    auth: resolveAuth(upstream.auth, credentials),
    timeouts: {
      totalMs: parseDuration(s.timeouts.total),
      attemptMs: parseDuration(s.timeouts.attempt),
      firstByteMs: parseDuration(s.timeouts.firstByte),
      fallbackHedgeMs: parseDuration(s.timeouts.fallbackHedge),
      streamIdleMs: parseDuration(s.timeouts.streamIdle),
      connectMs: parseDuration(s.timeouts.connect),
      perOutputTokenMs: parseDuration(s.timeouts.perOutputToken),
    },
    retry: {
      attempts: s.retry.attempts,
      backoff: {
        baseMs: parseDuration(s.retry.backoff.base),
        // An inherited max yields to an explicit larger base (validation rejects both set in one object).
        maxMs: Math.max(parseDuration(s.retry.backoff.max), parseDuration(s.retry.backoff.base)),
        multiplier: s.retry.backoff.multiplier,
        jitter: s.retry.backoff.jitter,
      },
      on: new Set(s.retry.on),
      statusCodes: new Set(s.retry.statusCodes),
      respectRetryAfter: s.retry.respectRetryAfter,
      maxRetryAfterMs: parseDuration(s.retry.maxRetryAfter),
      budget: {
        ratioPercent: s.retry.budget.ratio,
        minPerSecond: s.retry.budget.minPerSecond,
        windowMs: parseDuration(s.retry.budget.window),
      },
      maxBodyBytes: parseSize(s.retry.maxBodyBytes),
    },
    breaker: {
      scope: cb.scope,
      failOn: new Set(cb.failOn),
      consecutiveFailures: cb.consecutiveFailures,
      failureRate: {
        thresholdPercent: cb.failureRate.threshold,
        minRequests: cb.failureRate.minRequests,
        windowMs: parseDuration(cb.failureRate.window),
      },
      slowCall: { thresholdPercent: cb.slowCall.threshold, durationMs: parseDuration(cb.slowCall.duration) },
      openForMs: parseDuration(cb.openFor),
      maxOpenForMs: Math.max(parseDuration(cb.maxOpenFor), parseDuration(cb.openFor)),
      halfOpen: { maxProbes: cb.halfOpen.maxProbes, successesToClose: cb.halfOpen.successesToClose },
    },
    bulkhead: bulkheadOf(spec, upstream, s.bulkhead),
    validation: spec.validation,
    rateLimit: { requestsPerMinute: upstream.rateLimit.requestsPerMinute, tokensPerMinute: upstream.rateLimit.tokensPerMinute, fleet: fleetScoped(spec, upstream.rateLimit.scope) },
    limits: { maxAnswerBytes: parseSize(upstream.limits.maxAnswerBytes), maxStreamHeadBytes: parseSize(upstream.limits.maxStreamHeadBytes) },
    faults: spec.faults
      .filter((f) => f.upstream === upstream.name)
      .map((f) => ({ percent: f.percent, delayMs: f.delay === undefined ? undefined : parseDuration(f.delay), abortStatus: f.abort?.status })),
    chain: [{ kind: 'primary' }, ...fallback],
    emergencyChain: fallback.filter((tier) => (tier.kind === 'cache' || tier.kind === 'static') && emergencyServes.has(tier.kind)).map((tier) => ({ ...tier, when: undefined })),
    hasCacheTier: fallback.some((tier) => tier.kind === 'cache'),
    streamRecovery: { maxRecoveries: upstream.streamRecovery.maxRecoveries, continuation: continuationOf(upstream) },
    throughputFloor: { bytesPerSecond: upstream.throughputFloor.bytesPerSecond, windowMs: parseDuration(upstream.throughputFloor.window) },
    healthCheck: upstream.healthCheck.path
      ? {
          path: upstream.healthCheck.path,
          metricsPath: upstream.healthCheck.metricsPath || undefined,
          intervalMs: parseDuration(upstream.healthCheck.interval),
          timeoutMs: parseDuration(upstream.healthCheck.timeout),
          healthyThreshold: upstream.healthCheck.healthyThreshold,
          unhealthyThreshold: upstream.healthCheck.unhealthyThreshold,
        }
      : undefined,
    hedge: { delayMs: parseDuration(upstream.hedge.delay), percentile: upstream.hedge.percentile, upstream: upstream.hedge.upstream, model: upstream.hedge.model },
    websockets: upstream.websockets,
    apiVersion: upstream.apiVersion,
    guards: compileInputGuards(upstream.guards),
    budget: budgetOf(spec, upstream.budget),
    prices: compilePrices(upstream.prices),
    timeoutFallsBack: fallback.some((tier) => tier.kind === 'upstream' && (!tier.when || tier.when.has('timeout') || tier.when.has('unavailable'))),
    traced: spec.tracing.enabled,
  };
}

/**
 * `credentials`: what the controller said of the Secret keys the policy names (a snapshot's credential
 * fields, see api/protocol.ts), and how many pods it says the policy selects.
 */
export function compileConfig(spec: PolicySpec, version: ConfigVersion, credentials?: SnapshotCredentials & { selectedPods?: number }): RuntimeConfig {
  const classes = spec.priorities.classes.map((c) => ({ name: c.name, reservedPercent: c.reserved, maxSharePercent: c.maxShare }));
  return {
    version,
    upstreams: new Map(spec.upstreams.map((u) => [u.name, compileUpstream(spec, u, credentials)])),
    priorities: { classes, defaultIndex: classes.findIndex((c) => c.name === spec.priorities.default) },
    cache: {
      ttlMs: parseDuration(spec.cache.ttl),
      maxEntries: spec.cache.maxEntries,
      maxBytes: parseSize(spec.cache.maxBytes),
      serveFresh: spec.cache.serveFresh,
      // The shared answers are the policy's own: its name is their keys' namespace.
      redis: ((store) => store && { ...store, policy: version.policy })(storeOf(spec.cache.shared ? spec.sharedState?.redis : spec.cache.redis, credentials)),
    },
    degradation: {
      settings: {
        windowMs: parseDuration(spec.degradation.window),
        degradedErrorRate: spec.degradation.degraded.errorRate,
        degradedQueueDepth: spec.degradation.degraded.queueDepth,
        emergencyErrorRate: spec.degradation.emergency.errorRate,
      },
      maxTokens: spec.degradation.degraded.maxTokens,
      temperature: spec.degradation.degraded.temperature,
    },
    inbound: {
      headersTimeoutMs: parseDuration(spec.inbound.headersTimeout),
      requestTimeoutMs: parseDuration(spec.inbound.requestTimeout),
      maxConnections: spec.inbound.maxConnections,
    },
    maxBufferedBytes: parseSize(spec.limits.maxBufferedBytes),
    drainTimeoutMs: parseDuration(spec.shutdown.drainTimeout),
    budget: budgetOf(spec, spec.budget),
    sharedState: storeOf(spec.sharedState?.redis, credentials),
    selectedPods: credentials?.selectedPods,
    slo: sloOf(spec.slo),
    tracing: {
      enabled: spec.tracing.enabled,
      sampleRatio: spec.tracing.sampling === '' ? undefined : Number(spec.tracing.sampling) / 100,
      propagate: spec.tracing.propagate,
      content: spec.tracing.content.record ? { maxChars: spec.tracing.content.maxChars } : undefined,
    },
  };
}
