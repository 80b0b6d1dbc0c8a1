/**
 * Compiles a validated policy spec into the sidecar's runtime config: settings
 * merged per upstream (built-in ← spec.defaults ← own), durations in
 * milliseconds, sizes in bytes, class lists as sets, credentials resolved
 * (a Secret key's from what the controller said of it: api/protocol.ts).
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
  type ApiFamily,
  type ConfigVersion,
  type FailureClass,
  type PolicySpec,
  type SnapshotCredentials,
  type UpstreamSpec,
} from '../../api/index.js';
import { compileInputGuards, type InputGuards } from './input-guards.js';
import { compilePrices, type PriceList } from './prices.js';
import type { BackoffSettings, BreakerSettings, BudgetLimits, BulkheadSettings, DegradationSettings, HealthSettings, PriorityClass, RateLimitSettings, RetryBudgetSettings } from '../resilience/index.js';

export interface UpstreamConfig {
  name: string;
  api: ApiFamily;
  /** Where the upstream is served: its url, or its endpoints. */
  endpoints: EndpointConfig[];
  loadBalancing: 'round-robin' | 'weighted' | 'least-outstanding';
  /**
   * Header the sidecar sets instead of the app's credentials: its value, or, when there is no usable one
   * (the Secret or its key does not exist yet, it is not labelled for Breakwater, its value is no
   * credential), which key is missing ("Secret <name>, key <key>") and why ("does not exist", "is not
   * usable: ..."): the upstream is then not called at all.
   */
  auth?: { header: string; value: string; missing?: undefined } | { header: string; value?: undefined; missing: string; problem: string };
  timeouts: { totalMs: number; attemptMs: number; firstByteMs: number; streamIdleMs: number; connectMs: number; fallbackHedgeMs: number; perOutputTokenMs: number };
  retry: {
    attempts: number;
    backoff: BackoffSettings;
    on: ReadonlySet<FailureClass>;
    statusCodes: ReadonlySet<number>;
    respectRetryAfter: boolean;
    maxRetryAfterMs: number;
    budget: RetryBudgetSettings;
    maxBodyBytes: number;
  };
  breaker: BreakerSettings & { scope: 'upstream' | 'model'; failOn: ReadonlySet<FailureClass> };
  bulkhead: BulkheadSettings;
  /** Which 200s count as invalid-response (the policy's `validation`). */
  validation: PolicySpec['validation'];
  /** The upstream itself, then its fallback tiers, in the order they are tried. */
  chain: ChainTier[];
  /** The tiers emergency mode may answer from (cache, static, as listed), tried on any failure; empty if none. */
  emergencyChain: ChainTier[];
  /** Whether a tier can answer from the cache, so good answers must be kept. */
  hasCacheTier: boolean;
  /** A fallback upstream takes a timeout: then a timeout is not retried here, so a silent route costs one attempt. */
  timeoutFallsBack: boolean;
  /** Client-side limits (0 = off). */
  rateLimit: RateLimitSettings;
  /** Least bytes per second a stream must send, over each window after its first content event (0 = off). */
  throughputFloor: { bytesPerSecond: number; windowMs: number };
  /**
   * Mid-stream recovery: how many a request addressed to this upstream may have (0 = off), and how this
   * upstream, as the tier a recovery lands on, is asked to continue the text delivered ('off': regenerate).
   */
  streamRecovery: { maxRecoveries: number; continuation: ContinuationStyle };
  /** Caps on what is held of an answer: a plain one whole, a stream's bytes before its first content event. */
  limits: { maxAnswerBytes: number; maxStreamHeadBytes: number };
  /** Active health checks of each endpoint (undefined: off). */
  healthCheck?: HealthSettings & { path: string };
  /** Hedged requests: delay 0 = off; percentile 0 = the fixed delay; to another upstream (and model), or this one. */
  hedge: { delayMs: number; percentile: number; upstream?: string; model?: string };
  /** Whether WebSocket upgrades (the Realtime API) are tunnelled to this upstream. */
  websockets: boolean;
  /** Azure OpenAI: the api-version every request to this upstream carries. */
  apiVersion?: string;
  /** Input guards (off unless the policy sets them). */
  guards: InputGuards;
  /** This upstream's token and cost budget (undefined: none). */
  budget?: BudgetLimits;
  /** What tokens of a model of this upstream cost (its `prices`). */
  prices: PriceList;
  /** Chaos: faults injected into this upstream's attempts. */
  faults: { percent: number; delayMs?: number; abortStatus?: number }[];
}

/** How a tier is asked to continue a broken stream's text (see proxy/layers/continuation.ts). */
export type ContinuationStyle = 'prefill' | 'continue-final-message' | 'off';

/**
 * `auto` by API family (api/api-families.ts): Anthropic and Ollama continue a trailing assistant message;
 * OpenAI's own API does not (vLLM, llama.cpp and other servers that speak it are declared in the policy).
 */
function continuationOf(upstream: UpstreamSpec): ContinuationStyle {
  const declared = upstream.streamRecovery.continuation;
  return declared === 'auto' ? API_FAMILIES[upstream.api].continuation : declared;
}

/** A tier of an upstream's chain: the upstream itself, or a fallback (`when` undefined: any failure the app did not cause). */
export type ChainTier = FallbackTierConfig | { kind: 'primary' };

export type FallbackTierConfig = { when?: ReadonlySet<string> } & (
  | { kind: 'upstream'; upstream: string; model?: string }
  | { kind: 'cache' }
  | { kind: 'static'; message: string }
);

export interface CacheConfig {
  ttlMs: number;
  maxEntries: number;
  maxBytes: number;
  /** Answer from the cache even while the upstream is healthy. */
  serveFresh: boolean;
  /** A Redis shared by the fleet, behind the local cache. */
  redis?: { url: string; password?: string };
}

export interface DegradationConfig {
  settings: DegradationSettings;
  /** In degraded mode: max_tokens is clamped to this and temperature set. */
  maxTokens: number;
  temperature: number;
}

export interface EndpointConfig {
  /** scheme://host:port */
  origin: string;
  /** Path prefix of the URL, without a trailing slash ("" for none). */
  basePath: string;
  weight: number;
}

export interface RuntimeConfig {
  version: ConfigVersion;
  upstreams: ReadonlyMap<string, UpstreamConfig>;
  priorities: { classes: PriorityClass[]; defaultIndex: number };
  cache: CacheConfig;
  degradation: DegradationConfig;
  inbound: InboundLimits;
  /** Bytes of bodies (requests, plain answers) all requests may hold in memory at once. */
  maxBufferedBytes: number;
  drainTimeoutMs: number;
  /** The token and cost budget of all upstreams together (undefined: none). */
  budget?: BudgetLimits;
  /** The policy's SLOs (undefined: none). */
  slo?: SloConfig;
}

/** SLO objectives as ratios (0 = not tracked), over a window. */
export interface SloConfig {
  windowMs: number;
  availability: number;
  timeToFirstToken: { thresholdMs: number; objective: number };
}

function sloOf(slo: PolicySpec['slo']): SloConfig | undefined {
  const config = {
    windowMs: parseDuration(slo.window),
    availability: Number(slo.availability.objective) / 100,
    timeToFirstToken: { thresholdMs: parseDuration(slo.timeToFirstToken.threshold), objective: Number(slo.timeToFirstToken.objective) / 100 },
  };
  return config.availability > 0 || config.timeToFirstToken.objective > 0 ? config : undefined;
}

/** How long an app may take to send a request's headers and the whole request, and how many connections it may hold. */
export interface InboundLimits {
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  maxConnections: number;
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

/** A budget's limits, or undefined when it limits nothing. */
function budgetOf(budget: PolicySpec['budget']): BudgetLimits | undefined {
  const limits = { window: budget.window, tokens: budget.tokens, cost: Number(budget.cost) };
  return limits.tokens > 0 || limits.cost > 0 ? limits : undefined;
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
    bulkhead: {
      maxConcurrent: s.bulkhead.maxConcurrent,
      maxQueue: s.bulkhead.maxQueue,
      queueTimeoutMs: parseDuration(s.bulkhead.queueTimeout),
    },
    validation: spec.validation,
    rateLimit: upstream.rateLimit,
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
    budget: budgetOf(upstream.budget),
    prices: compilePrices(upstream.prices),
    timeoutFallsBack: fallback.some((tier) => tier.kind === 'upstream' && (!tier.when || tier.when.has('timeout') || tier.when.has('unavailable'))),
  };
}

/** `credentials`: what the controller said of the Secret keys the policy names (a snapshot's credential fields, see api/protocol.ts). */
export function compileConfig(spec: PolicySpec, version: ConfigVersion, credentials?: SnapshotCredentials): RuntimeConfig {
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
      redis: spec.cache.redis?.url
        ? {
            url: spec.cache.redis.url,
            password: spec.cache.redis.secretRef ? secretCredential(spec.cache.redis.secretRef, credentials).value : undefined,
          }
        : undefined,
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
    budget: budgetOf(spec.budget),
    slo: sloOf(spec.slo),
  };
}
