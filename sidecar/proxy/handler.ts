/**
 * The types the request path is made of. A Handler takes one request and
 * resolves to its Outcome; a Layer wraps a Handler in another (tower's
 * Layer). An Outcome is data only: it carries no permits and no callbacks,
 * and a stream's body releases what the layers hold when it ends.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import type { FailureClass } from '../../api/index.js';
import type { UpstreamConfig } from '../config/index.js';
import type { AbortWatch, DeliveredContent, Mode } from '../resilience/index.js';
import type { BodyLease } from './inbound/body-budget.js';
import type { Dialect, LocalErrorCode, TokenUsage } from './dialects/dialect.js';
import type { StreamFraming } from './streams/stream-framing.js';
import type { StreamBody } from './streams/stream-body.js';
import type { Endpoint, UpstreamState } from './upstream/upstream-state.js';
import type { RequestFacts, RequestReport } from './request-report.js';
import type { TraceScope } from './trace-scope.js';

/** One app request as it goes to one upstream (the primary, or a fallback tier), parsed once when it arrived. */
export interface ProxyRequest {
  upstream: UpstreamState;
  method: string;
  /** The app's path after /<upstream>, with the query. */
  appPath: string;
  /** The app's headers, less connection and x-breakwater-* ones (before any upstream's credentials). */
  appHeaders: IncomingHttpHeaders;
  /** Whether the app asked for a streamed answer. */
  stream: boolean;
  /** Whether the app asked for JSON output (response_format, or Ollama's format). */
  jsonMode?: boolean;
  /** Headers to send this upstream. */
  headers: IncomingHttpHeaders;
  /** The whole body when it fits retry.maxBodyBytes, so attempts can replay it. */
  body: Buffer | null;
  /** A body too large to buffer: sent once, never retried. */
  bodyStream?: Readable;
  model?: string;
  maxTokens?: number;
  /** How many choices the app asked for, when more than one (OpenAI's `n`): a stream finishes when each has. */
  choices?: number;
  /** The app asked an OpenAI stream for its usage (stream_options.include_usage). */
  usageAsked?: boolean;
  /** The sidecar asked the stream for its usage, which the app did not: the usage is counted, and hidden from the app. */
  usageHidden?: boolean;
  /** Index of the priority class (0 = most important). */
  priority: number;
  /** The sidecar's mode for this request: set by the degradation layer (absent above it), read by the layers below. */
  readonly mode?: Mode;
  /** The request's key in the answer cache: set by the answer-cache layer when its chain uses the cache, read by fallback's cache tier. */
  readonly cacheKey?: string;
  /** During a mid-stream recovery: what the app already has, and the break it recovers from. */
  resume?: Resume;
  /** Sent as another upstream's hedge: not hedged again. */
  hedged?: true;
}

/** A request past the breaker layer: one attempt, to the endpoint that layer chose (and holds its breaker's permit for). */
export interface AttemptRequest extends ProxyRequest {
  readonly endpoint: Endpoint;
}

/** A mid-stream recovery's new run of the chain: its success is the first content past what the app already has. */
export interface Resume {
  /** The content the app was sent. */
  delivered: DeliveredContent;
  /** The upstream whose stream broke, and how: the break counts as a failed attempt there. */
  broke: { upstream: string; failure: FailureClass };
  /** Set by a tier that asks its upstream to continue the text: how many of its characters the request carries. */
  carried?: number;
}

/**
 * What holds for the whole request, across tiers and attempts: set by the server when the request
 * arrives, and not changed after. What one layer decides for the layers inside it goes in with the
 * request instead (ProxyRequest.mode: the degradation layer; ProxyRequest.cacheKey: the answer cache;
 * AttemptRequest.endpoint: the breaker). What the layers tell the server goes in `report`, each fact
 * through its writer's method: the mode (degradation), attempts (retry, hedge, side-by-side.ts), the
 * hedge's result (hedge, fallback's first-token race), recoveries (stream recovery).
 */
export interface RequestContext {
  /** The app's API, chosen once from the addressed upstream. */
  readonly dialect: Dialect;
  /** The upstream the app addressed. */
  readonly primary: string;
  /** Clock time the request arrived and the time its total timeout ends. */
  readonly startedAt: number;
  readonly deadline: number;
  /** Aborts when the app goes away. */
  readonly signal: AbortWatch;
  /** The bytes of bodies this request holds (its own, plain answers), from the sidecar's budget; given back when it ends. */
  readonly memory: BodyLease;
  /** What the layers report of the request to the server (a run side by side reports to one of its own: side-by-side.ts). */
  readonly report: RequestReport;
  /**
   * The span the layers inside are within, while tracing is on (undefined while it is off: the one field the
   * request path checks). The server starts the request's; the tier and attempt layers hand in their own.
   */
  readonly trace?: TraceScope;
}

/** The request's context as the server reads it once the pipeline has answered: the report's facts, read-only. */
export type ServedContext = Omit<RequestContext, 'report'> & { readonly report: RequestFacts };

/** Why the retry layer made no further attempt. */
export type StopReason = 'falls-back' | 'not-retryable' | 'attempts-exhausted' | 'retry-after-too-long' | 'deadline' | 'budget' | 'circuit-open' | 'body-not-replayable' | 'not-idempotent';

/** Who produced an outcome: the upstream (its name) and the model asked of it. */
interface Source {
  upstream: string;
  model?: string;
}

export type AnswerOutcome = Source & {
  kind: 'answer';
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** Undefined for a success. */
  failure: FailureClass | undefined;
  /** Tokens a successful upstream answer reports (read once, by the attempt). */
  usage?: TokenUsage;
  stopped?: StopReason;
  /** Set when the sidecar composed the answer from a cache or static tier. */
  composed?: 'cache' | 'static';
};

export type StreamOutcome = Source & {
  kind: 'stream';
  status: number;
  headers: IncomingHttpHeaders;
  /** How its events sit on the wire; undefined for a pass-through answer relayed as bytes (streams/raw-relay.ts). */
  framing: StreamFraming | undefined;
  body: StreamBody;
  /** Time from the attempt's start to its first content event. */
  timeToFirstDataMs: number;
  /** The upstream's stream-idle timeout, which also bounds how long the app may take to read. */
  idleMs: number;
  /** For a recovery's new stream: how it took up the answer (it starts with the first content past what the app has). */
  strategy?: 'regenerate' | 'continuation';
};

/** How a tier can fail, as fallback `when` names it: a failure class, unavailable, or its budget spent. */
export type ChainFailure = FailureClass | 'unavailable' | 'budget-exhausted';

/**
 * Failures that say the upstream did not take the request: it never connected, refused it as rate-limited
 * or overloaded, or it was never sent (breaker open, bulkhead full, budget spent). Only after one of these
 * is a request that does not replay safely (a pass-through POST) sent again.
 */
export const NOT_TAKEN: ReadonlySet<ChainFailure> = new Set<ChainFailure>(['connect-failure', 'rate-limited', 'overloaded', 'unavailable', 'budget-exhausted']);

export type LocalOutcome = Source & {
  kind: 'local';
  status: number;
  code: LocalErrorCode;
  message: string;
  retryAfterMs?: number;
  failure: ChainFailure;
  /** Set when the breaker layer refused the attempt, so none was made (the app sees 503 `circuit_open`). */
  refusedBy?: 'breaker';
};

/** The breaker layer's refusal: no endpoint's breaker admitted the attempt, and none was made. */
export type BreakerRefusal = LocalOutcome & { code: 'circuit_open'; refusedBy: 'breaker' };

/** Whether the breaker layer refused the attempt (rather than an attempt failing). */
export function refusedByBreaker(outcome: Outcome): outcome is BreakerRefusal {
  return outcome.kind === 'local' && outcome.refusedBy === 'breaker';
}

export type Outcome = AnswerOutcome | StreamOutcome | LocalOutcome | { kind: 'cancelled' };

/** Takes a request of kind `R` (a ProxyRequest; below the breaker layer, an AttemptRequest) to its outcome. */
export type Handler<R extends ProxyRequest = ProxyRequest> = (req: R, ctx: RequestContext) => Promise<Outcome>;
/**
 * One layer of the pipeline: wraps the handler inside it, taking requests of kind `Outer` and handing it
 * `Inner` (the breaker layer takes a ProxyRequest and hands in an AttemptRequest; the others hand in the
 * kind they take). A layer that only some upstreams need says which (`enabledFor`): each upstream's stack
 * is built without the layers it does not enable (pipeline.ts).
 */
export interface Layer<Outer extends ProxyRequest = ProxyRequest, Inner extends ProxyRequest = Outer> {
  (inner: Handler<Inner>): Handler<Outer>;
  enabledFor?(config: UpstreamConfig): boolean;
}

/** `layer`, in the stacks of the upstreams `enabledFor` admits only (so it hands in the kind of request it takes). */
export function enabledWhen<R extends ProxyRequest = ProxyRequest>(enabledFor: (config: UpstreamConfig) => boolean, layer: (inner: Handler<R>) => Handler<R>): Layer<R> {
  return Object.assign(layer, { enabledFor });
}

/** An answer the sidecar makes itself about `req`. */
export function localError(
  req: ProxyRequest,
  status: number,
  code: LocalErrorCode,
  message: string,
  failure: LocalOutcome['failure'],
  retryAfterMs?: number,
): LocalOutcome {
  return { kind: 'local', upstream: req.upstream.config.name, model: req.model, status, code, message, failure, retryAfterMs };
}

/** The failure class an outcome ends with; undefined for a success, a stream that started, or a cancellation. */
export function failureOf(outcome: Outcome): ChainFailure | undefined {
  return outcome.kind === 'answer' || outcome.kind === 'local' ? outcome.failure : undefined;
}
