/**
 * The pipeline of one request, in the order the contract gives: for the
 * upstream and then each fallback tier that its `when` admits — bulkhead
 * admission → (per attempt) breaker → attempt with timeouts → classification
 * → retry decision — until a tier answers; a `cache` tier answers with the
 * last good answer to the same request, a `static` tier with the policy's
 * degraded message, both in the API's success shape. The total timeout spans
 * the chain. Then one metrics update and one log line.
 */
import type { ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { FailureClass } from '../../api/index.js';
import type { FallbackTierConfig } from '../config/runtime-config.js';
import type { Metrics } from '../metrics.js';
import { BulkheadRejection } from '../resilience/bulkhead.js';
import type { Clock } from '../resilience/clock.js';
import type { SidecarState } from '../sidecar-state.js';
import { answerText, apiOfPath, completeBody, streamEvents } from './answer-shapes.js';
import type { ProxyRequest } from './proxy-request.js';
import { ResponseCache } from './response-cache.js';
import { respond, writeLocalError, type Delivery } from './respond.js';
import type { Mode } from '../resilience/degradation.js';
import { runAttempts, sleep, type Final } from './retry-loop.js';
import { degradedRequest, requestFor } from './tier-request.js';

export interface PipelineEnv {
  clock: Clock;
  metrics: Metrics;
  log: Logger;
  state: SidecarState;
  random?: () => number;
}

/** The failure that ended a tier, as `fallback.when` names it; undefined when the tier's answer stands. */
function failureOf(final: Final): FailureClass | 'unavailable' | undefined {
  if (final.kind === 'local') return final.failure;
  if (final.kind === 'answer') return final.answer.failure === 'client-error' ? undefined : final.answer.failure;
  return undefined;
}

/** Classes that, once retries are spent, make an upstream "unavailable" for `when`. */
const UNAVAILABLE = new Set(['unavailable', 'rate-limited', 'overloaded', 'server-error', 'timeout', 'connect-failure', 'reset']);

function admits(tier: FallbackTierConfig, failure: FailureClass | 'unavailable'): boolean {
  if (!tier.when) return true;
  return tier.when.has(failure) || (tier.when.has('unavailable') && UNAVAILABLE.has(failure));
}

/** LLM tokens a request is expected to use: its output cap, and its input at ~4 bytes a token. */
const estimatedTokens = (req: ProxyRequest) => (req.maxTokens ?? 0) + Math.ceil((req.body?.length ?? 0) / 4);

/**
 * The client-side rate limit: a request over it waits as long as the bulkhead's
 * queue timeout and the deadline allow, and is otherwise refused with 429.
 */
async function rateLimit(req: ProxyRequest, env: PipelineEnv): Promise<Final | undefined> {
  const { limiter, config } = req.upstream;
  if (!limiter.enabled) return undefined;
  const until = Math.min(env.clock.now() + config.bulkhead.queueTimeoutMs, req.deadline);
  for (;;) {
    const wait = limiter.tryTake(estimatedTokens(req));
    if (wait === 0) return undefined;
    if (env.clock.now() + wait > until) {
      const message = `upstream ${config.name} is over its client-side rate limit`;
      return { kind: 'local', status: 429, code: 'rate_limited', message, retryAfterMs: wait, failure: 'rate-limited', attempts: 0 };
    }
    if (!(await sleep(env.clock, wait, req.signal))) return { kind: 'cancelled', attempts: 0 };
  }
}

/** Rate limit, bulkhead, then attempts, on one upstream; the slot is held until `release`. */
async function attemptTier(req: ProxyRequest, env: PipelineEnv): Promise<{ final: Final; release: () => void }> {
  const { bulkhead, config } = req.upstream;
  const limited = await rateLimit(req, env);
  if (limited) return { final: limited, release: () => {} };
  if (!bulkhead.tryAcquire(req.priority)) {
    try {
      await bulkhead.acquire(req.priority, req.signal);
    } catch (err) {
      if (!(err instanceof BulkheadRejection)) throw err;
      if (err.reason === 'aborted') return { final: { kind: 'cancelled', attempts: 0 }, release: () => {} };
      env.metrics.bulkheadRejected.inc({ upstream: config.name, reason: err.reason });
      const message = `upstream ${config.name} is at its concurrency limit (${err.reason})`;
      return { final: { kind: 'local', status: 503, code: 'overloaded', message, retryAfterMs: 1000, failure: 'unavailable', attempts: 0 }, release: () => {} };
    }
  }
  let released = false;
  const release = () => {
    if (!released) bulkhead.release(req.priority);
    released = true;
  };
  try {
    return { final: await runAttempts(req, env), release };
  } catch (err) {
    release();
    throw err;
  }
}

/** An answer the sidecar composes (cache or static tier): the upstream's success shape, streamed if the app asked. */
function writeComposed(res: ServerResponse, req: ProxyRequest, text: string, cached: Buffer | undefined, tier: 'cache' | 'static', attempts: number, clock: Clock): Delivery {
  const shape = apiOfPath(req.appPath);
  const model = req.model ?? 'breakwater';
  const headers: Record<string, string> = { 'x-breakwater-upstream': req.upstream.config.name, 'x-breakwater-fallback': tier, 'x-breakwater-attempts': String(attempts) };
  if (tier === 'cache') headers['x-breakwater-cache'] = 'hit';
  else headers['x-breakwater-degraded'] = 'true';
  if (req.stream) {
    const events = streamEvents(shape, model, [text], { input: 0, output: 0 });
    const body = [...events.start, ...events.content, ...events.end].join('');
    res.writeHead(200, { ...headers, 'content-type': shape.startsWith('ollama') ? 'application/x-ndjson' : 'text/event-stream', 'cache-control': 'no-cache' }).end(body);
  } else {
    const body = cached ?? Buffer.from(completeBody(shape, model, text, { input: 0, output: 0 }));
    res.writeHead(200, { ...headers, 'content-type': 'application/json', 'content-length': String(body.length) }).end(body);
  }
  return { status: 200, outcome: tier === 'cache' ? 'ok' : 'degraded', failure: 'none', firstByteAt: clock.now() };
}

async function runChain(req: ProxyRequest, res: ServerResponse, env: PipelineEnv, sidecarMode: Mode): Promise<Delivery & { attempts: number; tier: string; mode: Mode }> {
  const primary = req.upstream;
  const degradation = env.state.config!.degradation;
  // Emergency needs a tier it may serve; a chain without one keeps calling its upstreams, as in degraded mode.
  const mode = sidecarMode === 'emergency' && primary.config.emergencyChain.length === 0 ? 'degraded' : sidecarMode;
  if (mode !== 'normal') res.setHeader('x-breakwater-mode', mode);
  const cache = env.state.cache;
  // Only chains that can answer from the cache pay for keys and stored answers.
  const usesCache = cache.config.serveFresh || primary.config.hasCacheTier;
  const cacheKey = usesCache ? ResponseCache.key(primary.config.name, req.appPath, req.body) : undefined;
  const shape = apiOfPath(req.appPath);
  if (cache.config.serveFresh) {
    const hit = await cache.get(cacheKey);
    const text = hit && answerText(shape, hit.body.toString('utf8'));
    if (hit && text !== undefined) return { ...writeComposed(res, req, text, hit.body, 'cache', 0, env.clock), attempts: 0, tier: 'cache', mode };
  }
  // Emergency: only the tiers the policy lists answer, and no upstream is called.
  const chain = mode === 'emergency' ? primary.config.emergencyChain : primary.config.chain;
  let last: { final: Final; request: ProxyRequest; release: () => void } | undefined;
  let failure: FailureClass | 'unavailable' | undefined = mode === 'emergency' ? 'unavailable' : undefined;
  let attempts = 0;
  for (const tier of chain) {
    if (tier.kind !== 'primary' && (failure === undefined || !admits(tier, failure))) continue;
    if (tier.kind === 'cache') {
      const hit = await cache.get(cacheKey);
      const text = hit && answerText(shape, hit.body.toString('utf8'));
      if (hit && text !== undefined) {
        last?.release();
        return { ...writeComposed(res, req, text, req.stream ? undefined : hit.body, 'cache', attempts, env.clock), attempts, tier: 'cache', mode };
      }
      continue;
    }
    if (tier.kind === 'static') {
      last?.release();
      return { ...writeComposed(res, req, tier.message, undefined, 'static', attempts, env.clock), attempts, tier: 'static', mode };
    }
    const upstream = tier.kind === 'primary' ? primary : env.state.upstream(tier.upstream);
    // A body streamed to the primary (over maxBodyBytes) cannot be sent again.
    if (!upstream || (tier.kind !== 'primary' && req.bodyStream) || env.clock.now() >= req.deadline) continue;
    const tierRequest = tier.kind === 'primary' ? req : requestFor(req, upstream, tier.model);
    const request = mode === 'degraded' ? degradedRequest(tierRequest, degradation.maxTokens, degradation.temperature) : tierRequest;
    // The previous tier's answer is read in full; its slot goes back before the next tier is tried.
    last?.release();
    const outcome = await attemptTier(request, env);
    attempts += outcome.final.attempts;
    last = { ...outcome, request };
    failure = failureOf(outcome.final);
    if (failure === undefined) break;
  }
  if (!last) {
    const message = mode === 'emergency' ? 'the sidecar is in emergency mode and has no cached answer for this request' : 'no tier of the chain could be tried';
    writeLocalError(res, primary.config.api, 503, 'overloaded', message, { 'x-breakwater-upstream': primary.config.name, 'x-breakwater-attempts': String(attempts) }, 5000);
    return { status: 503, outcome: 'local_error', failure: 'unavailable', code: 'overloaded', firstByteAt: env.clock.now(), attempts, tier: 'primary', mode };
  }
  try {
    // x-breakwater-attempts counts the attempts of the whole chain.
    const final = { ...last.final, attempts };
    const { request } = last;
    if (usesCache && final.kind === 'answer' && final.answer.failure === undefined && !req.stream && (final.answer.headers['content-type'] ?? '').includes('json')) {
      cache.set(cacheKey, { status: final.answer.status, contentType: 'application/json', body: final.answer.body });
    }
    const tierName = request.upstream === primary ? 'primary' : request.upstream.config.name;
    if (tierName !== 'primary') res.setHeader('x-breakwater-fallback', tierName);
    const delivery = await respond(res, request, final, env.clock);
    // Correct the rate limiter's estimate with what the answer says it used.
    if (delivery.usage) request.upstream.limiter.adjust(delivery.usage.input + delivery.usage.output - estimatedTokens(request));
    return { ...delivery, attempts, tier: tierName, mode };
  } finally {
    last.release();
  }
}

export async function forward(req: ProxyRequest, res: ServerResponse, env: PipelineEnv): Promise<void> {
  const { metrics, clock } = env;
  const upstream = req.upstream.config.name;
  const d = await runChain(req, res, env, env.state.degradation.mode(env.state.queued()));
  // Emergency answers skip the upstreams and stay out of the window, so it drains and the mode can recover.
  if (d.mode !== 'emergency') env.state.degradation.record(!['ok', 'cancelled'].includes(d.outcome) && !['client-error', 'context-length', 'content-filter'].includes(d.failure));
  const model = metrics.modelLabel(upstream, req.model);
  const seconds = (clock.now() - req.startedAt) / 1000;
  metrics.requests.inc({ upstream, model, class: d.failure, outcome: d.outcome });
  metrics.duration.observe({ upstream, outcome: d.outcome }, seconds);
  if (d.tier !== 'primary') metrics.fallbacks.inc({ upstream, tier: d.tier });
  if (d.firstByteAt !== undefined) metrics.timeToFirstByte.observe({ upstream }, (d.firstByteAt - req.startedAt) / 1000);
  if (d.usage) {
    metrics.tokens.inc({ upstream, model, type: 'input' }, d.usage.input);
    metrics.tokens.inc({ upstream, model, type: 'output' }, d.usage.output);
  }
  env.log.info(
    {
      upstream,
      model: req.model,
      path: req.appPath.split('?', 1)[0], // the query may carry a key
      status: d.status,
      outcome: d.outcome,
      class: d.failure,
      code: d.code,
      attempts: d.attempts,
      tier: d.tier,
      durationMs: Math.round(seconds * 1000),
      ttfbMs: d.firstByteAt === undefined ? undefined : Math.round(d.firstByteAt - req.startedAt),
      tokens: d.usage,
    },
    'request',
  );
}
