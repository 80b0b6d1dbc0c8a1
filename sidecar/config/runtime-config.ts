/**
 * What the sidecar's runtime config is: a validated policy compiled
 * (compile-config.ts) into settings merged per upstream, durations in
 * milliseconds, sizes in bytes, class lists as sets and credentials
 * resolved. The rest of the sidecar reads these types, never the spec.
 */
import type { ApiFamily, ConfigVersion, FailureClass, PolicySpec } from '../../api/index.js';
import type { InputGuards } from './input-guards.js';
import type { PriceList } from './prices.js';
import type { AdaptiveLimitSettings, BackoffSettings, BreakerSettings, BudgetLimits, BulkheadSettings, DegradationSettings, HealthSettings, PriorityClass, RateLimitSettings, RetryBudgetSettings } from '../resilience/index.js';

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
  /** Its queue and fixed limit; `adaptive`: the limit is learnt within these bounds instead; `fairBy`: the caller's header (lower case) when admission is fair between callers. */
  bulkhead: BulkheadSettings & { adaptive?: AdaptiveLimitSettings; fairBy?: string };
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
  /** Client-side limits (0 = off): this pod's, or the fleet's (counted in the shared store). */
  rateLimit: RateLimitSettings & { fleet: boolean };
  /** Least bytes per second a stream must send, over each window after its first content event (0 = off). */
  throughputFloor: { bytesPerSecond: number; windowMs: number };
  /**
   * Mid-stream recovery: how many a request addressed to this upstream may have (0 = off), and how this
   * upstream, as the tier a recovery lands on, is asked to continue the text delivered ('off': regenerate).
   */
  streamRecovery: { maxRecoveries: number; continuation: ContinuationStyle };
  /** Caps on what is held of an answer: a plain one whole, a stream's bytes before its first content event. */
  limits: { maxAnswerBytes: number; maxStreamHeadBytes: number };
  /** Active health checks of each endpoint (undefined: off), and the path of the server's Prometheus metrics read with them (its queue). */
  healthCheck?: HealthSettings & { path: string; metricsPath?: string };
  /** Hedged requests: delay 0 = off; percentile 0 = the fixed delay; to another upstream (and model), or this one. */
  hedge: { delayMs: number; percentile: number; upstream?: string; model?: string };
  /** Whether WebSocket upgrades (the Realtime API) are tunnelled to this upstream. */
  websockets: boolean;
  /** Azure OpenAI: the api-version every request to this upstream carries. */
  apiVersion?: string;
  /** Input guards (off unless the policy sets them). */
  guards: InputGuards;
  /** This upstream's token and cost budget (undefined: none). */
  budget?: BudgetConfig;
  /** What tokens of a model of this upstream cost (its `prices`). */
  prices: PriceList;
  /** Chaos: faults injected into this upstream's attempts. */
  faults: { percent: number; delayMs?: number; abortStatus?: number }[];
  /** The policy turns tracing on (spec.tracing.enabled): this upstream's stacks hold the span layers. */
  traced: boolean;
}

/** A token and cost budget: this pod's, or the fleet's (counted in the shared store). */
export interface BudgetConfig extends BudgetLimits {
  fleet: boolean;
}

/** A Redis (or Valkey) the fleet shares: its URL and, from a Secret, its password. */
export interface SharedStoreConfig {
  url: string;
  password?: string;
}

/** How a tier is asked to continue a broken stream's text (see proxy/layers/continuation.ts). */
export type ContinuationStyle = 'prefill' | 'continue-final-message' | 'off';

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
  /**
   * A Redis shared by the fleet, behind the local cache (cache.redis, or spec.sharedState with cache.shared),
   * and the policy whose answers it keeps: keys are the policy's own, so policies that share a Redis never
   * answer each other's requests.
   */
  redis?: SharedStoreConfig & { policy: string };
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
  budget?: BudgetConfig;
  /** The store the fleet's counts are kept in (spec.sharedState; undefined: none). */
  sharedState?: SharedStoreConfig;
  /** How many pods the controller says the policy selects (undefined: it did not say; a policy file). */
  selectedPods?: number;
  /** The policy's SLOs (undefined: none). */
  slo?: SloConfig;
  /** OpenTelemetry tracing, as the policy sets it (spec.tracing; the exporter is the OTEL_* environment's). */
  tracing: TracingConfig;
}

/** What the policy says of tracing; OTEL_SDK_DISABLED=true in the environment keeps it off whatever it says. */
export interface TracingConfig {
  enabled: boolean;
  /** Share of new traces (requests without a sampled parent) recorded, 0 to 1; undefined: OTEL_TRACES_SAMPLER's. */
  sampleRatio?: number;
  /** The upstream is sent the attempt's traceparent (else the app's, untouched). */
  propagate: boolean;
  /** Prompts and answers in spans, at most maxChars of each (undefined: never, the default). */
  content?: { maxChars: number };
}

/** SLO objectives as ratios (0 = not tracked), over a window. */
export interface SloConfig {
  windowMs: number;
  availability: number;
  timeToFirstToken: { thresholdMs: number; objective: number };
}

/** How long an app may take to send a request's headers and the whole request, and how many connections it may hold. */
export interface InboundLimits {
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  maxConnections: number;
}
