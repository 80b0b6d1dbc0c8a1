/**
 * proxy/ — the data plane. This file is its map: the layers one request goes
 * through, outermost first. layers/ holds one file per layer, and
 * handler.ts the types they are made of: a layer keeps hold of what it
 * acquires through holding.ts, and runs a request twice at once through
 * side-by-side.ts (a hedge; fallback's first-token race,
 * first-token-race.ts); expected-usage.ts is what the token layers reserve.
 * Around them: inbound/ (the server the app calls: reads the request,
 * writes the outcome), upstream/ (each upstream's live objects and the
 * requests and attempts sent to it), streams/ (a streamed answer, relayed
 * and recovered), answers/ (answers kept, composed or judged) and
 * dialects/ (what differs between API families). Each folder's main file
 * opens with what the folder holds: inbound/server.ts,
 * upstream/upstream-state.ts, streams/stream-body.ts,
 * answers/response-cache.ts, dialects/dialect.ts, layers/index.ts.
 *
 *   input guard       the addressed upstream's input guards: a request that trips one is answered 400 by nothing else
 *   degradation       the sidecar's mode for this request; its outcome feeds the mode's window
 *   answer cache      fresh hits (serveFresh); keeps good answers for the cache tier
 *   stream recovery   a stream that breaks after its first text continues from a new run of the chain
 *   fallback          the addressed upstream, then each tier its `when` admits (upstream, cache, static)
 *   --- per upstream tier ---
 *   trace tier        tracing on: the tier's span, which the layers below put their decisions on
 *   credential        a tier without a usable credential from its Secret is not called (unavailable)
 *   input guard       a fallback tier's own input guards: a request that trips one never leaves
 *   continuation      in a recovery: the tier is asked to continue the text delivered, where it can
 *   degraded request  in degraded mode: output tokens clamped, temperature set
 *   token budget      the tier's and the policy's token and cost budgets: reserved up front, charged from usage
 *   rate limit        client-side request and token buckets
 *   bulkhead          a slot of the upstream's bulkhead (its limit adaptive or fixed), by priority class, then fairly between callers
 *   retry             attempts with backoff, Retry-After and the retry budget
 *   hedge             a slow first attempt gets a second one alongside; the first to answer wins
 *                     (one to another upstream enters that upstream's tier from the top)
 *   --- per attempt ---
 *   breaker           the first endpoint whose breaker admits the attempt
 *   faults            injected delays and aborts (so breakers see them)
 *   endpoint load     attempts in flight per endpoint (least-outstanding)
 *   adaptive limit    bulkhead mode adaptive: what each attempt's answer says of the provider's load moves its endpoint's limit
 *   trace attempt     tracing on: the attempt's client span; the upstream gets its traceparent
 *   attempt           the HTTP call: timeouts, classification, first content event
 *
 * Each upstream gets its own stack, built for its config, holding only the
 * layers it enables: no input guard without guards, no continuation where it
 * is off, no rate limit, hedge or faults unless set, no stream recovery at
 * maxRecoveries 0, no credential check while its credential is there, no
 * adaptive limit in bulkhead mode fixed, no
 * span layers unless the policy turns tracing on (../tracing/index.ts).
 *
 * Why this order: the addressed upstream's guards come first, so no cached,
 * static or emergency answer is given to a request they block (an answer
 * cached before a guard was added included); the mode and the cache act on
 * the request as the app sent it; a tier's guard reads the request before it
 * costs a token, a slot or an attempt; recovery wraps the whole chain, so a broken stream may continue from the
 * same upstream or a fallback tier; each tier is its own upstream, with its own limits, slots and retries;
 * the budget reserves for the request the tier will send (continued, clamped), and once for
 * all its retries and hedges, so a spent budget can hand the request to a cheaper tier;
 * admission (rate limit, bulkhead) comes before any retry, so a retry never
 * queues again; a hedge is an attempt within the retry's, on the same slot
 * and budget; the breaker is asked before every attempt, so neither retries
 * nor hedges pound an open breaker.
 */
import type { BudgetBook } from '../budget-book.js';
import type { UpstreamConfig } from '../config/index.js';
import type { Metrics } from '../metrics.js';
import type { Clock, DegradationMonitor } from '../resilience/index.js';
import type { Handler, Layer, ProxyRequest } from './handler.js';
import type { Limiter } from './layers/rate-limit.js';
import { adaptiveLimit, answerCache, attempt, breaker, bulkhead, continuation, credential, hedge, inputGuard, degradation, degradedRequest, endpointLoad, fallback, faults, rateLimit, retry, streamRecovery, tokenBudget, traceAttempt, traceTier } from './layers/index.js';
import type { ResponseCache } from './answers/response-cache.js';
import type { UpstreamState } from './upstream/upstream-state.js';

export interface PipelineDeps {
  clock: Clock;
  metrics: Metrics;
  random?: () => number;
  /** The live objects of the config in force (replaced on apply, so read per request). */
  upstream(name: string): UpstreamState | undefined;
  cache(): ResponseCache;
  degradation(): DegradationMonitor;
  degradedSettings(): { maxTokens: number; temperature: number };
  queued(): number;
  budgets(): BudgetBook;
  /** Spending changed (to keep it across a restart). */
  budgetsSpent(): void;
  /** The fleet's rate limiter of an upstream whose rate limit is the fleet's. */
  fleetLimiter?(upstream: string): Limiter | undefined;
}

/** A layer of any kinds of request (every Layer is one); Outermost says which fit together. */
interface AnyLayer {
  (inner: never): Handler<never>;
  enabledFor?(config: UpstreamConfig): boolean;
}

/**
 * The kind of request that `layers` (outermost first) around a handler of `R` take, when each hands in
 * the kind the one inside it takes (the innermost handler's, for the last); never when one does not (a
 * layer that reads the chosen endpoint above the breaker, one that takes any request below it).
 */
type Outermost<L extends readonly AnyLayer[], R extends ProxyRequest> = L extends readonly [...infer Outer extends readonly AnyLayer[], infer Last]
  ? Last extends Layer<infer O extends ProxyRequest, R>
    ? Outermost<Outer, O>
    : never
  : R;

/**
 * `layers` around `innermost`, the first given outermost: one stack for each upstream config, built at its
 * first request, without the layers that upstream does not enable (Layer.enabledFor). A config applied
 * replaces every upstream's config object, so its stacks are built anew, and the old ones go with it.
 * The layers are checked to fit together where they are given (Outermost), and composed here as any.
 */
export function stack<const L extends readonly AnyLayer[], R extends ProxyRequest>(layers: L, innermost: Handler<R>): Handler<Outermost<L, R>>;
export function stack(layers: readonly AnyLayer[], innermost: Handler<never>): Handler {
  const built = new WeakMap<UpstreamConfig, Handler>();
  const build = (config: UpstreamConfig) => layers.filter((layer) => layer.enabledFor?.(config) ?? true).reduceRight<Handler<never>>((inner, layer) => layer(inner as never), innermost) as Handler;
  return (req, ctx) => {
    const { config } = req.upstream;
    let handler = built.get(config);
    if (!handler) built.set(config, (handler = build(config)));
    return handler(req, ctx);
  };
}

export function buildPipeline(d: PipelineDeps): Handler {
  // A hedge sent to another upstream enters that upstream's tier like a fallback: its guards, budget, limits and bulkhead.
  const tier: Handler = stack(
    [
      traceTier,
      credential,
      inputGuard(d.metrics, 'fallback tiers'),
      continuation,
      degradedRequest(d.degradedSettings),
      tokenBudget({ budgets: d.budgets, metrics: d.metrics, spent: d.budgetsSpent }),
      rateLimit(d.clock, (name) => d.fleetLimiter?.(name)),
      bulkhead(d.metrics),
      retry({ clock: d.clock, metrics: d.metrics, random: d.random }),
      hedge({ clock: d.clock, metrics: d.metrics, upstream: d.upstream, tier: (req, ctx) => tier(req, ctx) }),
      breaker(d.clock),
      faults({ clock: d.clock, metrics: d.metrics, random: d.random }),
      endpointLoad,
      adaptiveLimit(d.clock),
      traceAttempt,
    ],
    attempt(d.clock),
  );
  return stack(
    [
      inputGuard(d.metrics, 'addressed'),
      degradation({ monitor: d.degradation, queued: d.queued }),
      answerCache(d.cache),
      streamRecovery(d.clock, d.metrics),
      fallback({ clock: d.clock, metrics: d.metrics, upstream: d.upstream, cache: d.cache }),
    ],
    tier,
  );
}
