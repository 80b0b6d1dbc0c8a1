/**
 * One metrics update (and SLI event) and one log line for every finished request. A clean success
 * (answered by the addressed upstream at the first attempt, nothing recovered or hedged) is logged
 * at debug: its metrics say all there is, and a line per success is most of a pod's log volume and a
 * sixth of the sidecar's CPU per request at a steady rate (bench/). Anything else is logged at info.
 * `breakwater.dev/log-level: debug` on a pod (BREAKWATER_LOG_LEVEL) logs every request.
 * A traced request's span ends here too, with what was delivered.
 */
import type { Logger } from 'pino';
import type { Metrics } from '../../metrics.js';
import type { Clock } from '../../resilience/index.js';
import type { SloTracker } from '../../slo-tracker.js';
import type { ProxyRequest, ServedContext } from '../handler.js';
import type { Delivery } from './write-outcome.js';
import { endRequest } from '../../tracing/request-span.js';
import { operationOf, providerOf } from '../../tracing/genai.js';

export function observe(req: ProxyRequest, ctx: ServedContext, d: Delivery, deps: { metrics: Metrics; log: Logger; clock: Clock; slo(): SloTracker | undefined }): void {
  const { metrics } = deps;
  const upstream = ctx.primary;
  const model = metrics.modelLabel(upstream, req.model);
  const seconds = (deps.clock.now() - ctx.startedAt) / 1000;
  metrics.requests.inc({ upstream, model, class: d.failure, outcome: d.outcome });
  metrics.duration.observe({ upstream, outcome: d.outcome }, seconds);
  if (d.tier !== 'primary') metrics.fallbacks.inc({ upstream, tier: d.tier });
  if (d.firstByteAt !== undefined) metrics.timeToFirstByte.observe({ upstream }, (d.firstByteAt - ctx.startedAt) / 1000);
  const slo = deps.slo();
  if (slo) for (const [sli, good] of slo.record(d, req.stream, ctx.startedAt)) metrics.sliEvents.inc({ policy: slo.policy, sli, result: good ? 'good' : 'bad' });
  // The GenAI conventions' metrics (genai-metrics.ts), for the request as the app made it.
  const genAi = { gen_ai_operation_name: operationOf(req.appPath), gen_ai_provider_name: providerOf(req.upstream.config), gen_ai_request_model: model };
  metrics.genAiDuration.observe({ ...genAi, error_type: d.failure === 'none' ? '' : d.failure }, seconds);
  if (req.stream && d.firstByteAt !== undefined) metrics.genAiTimeToFirstToken.observe(genAi, (d.firstByteAt - ctx.startedAt) / 1000);
  if (d.usage) {
    metrics.tokens.inc({ upstream, model, type: 'input' }, d.usage.input);
    metrics.tokens.inc({ upstream, model, type: 'output' }, d.usage.output);
    metrics.genAiTokenUsage.observe({ ...genAi, gen_ai_token_type: 'input' }, d.usage.input);
    metrics.genAiTokenUsage.observe({ ...genAi, gen_ai_token_type: 'output' }, d.usage.output);
  }
  if (ctx.trace) endRequest(ctx.trace, ctx, d);
  const { attempts, recoveries, hedge } = ctx.report;
  const clean = d.outcome === 'ok' && d.tier === 'primary' && attempts <= 1 && recoveries === 0 && hedge === undefined;
  const level = clean ? 'debug' : 'info';
  if (!deps.log.isLevelEnabled(level)) return;
  deps.log[level](
    {
      upstream,
      model: req.model, // bounded when read (read-request.ts)
      path: req.appPath.split('?', 1)[0]!.slice(0, 256), // the query may carry a key; the path is the app's: bounded
      status: d.status,
      outcome: d.outcome,
      class: d.failure,
      code: d.code,
      attempts,
      recoveries: recoveries || undefined, // left out of the line until one succeeded
      tier: d.tier,
      durationMs: Math.round(seconds * 1000),
      ttfbMs: d.firstByteAt === undefined ? undefined : Math.round(d.firstByteAt - ctx.startedAt),
      tokens: d.usage,
    },
    'request',
  );
}
