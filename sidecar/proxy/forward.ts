/**
 * The pipeline of one request, in the order the contract gives:
 * bulkhead admission → (per attempt) breaker → attempt with timeouts →
 * classification → retry decision → the answer to the app; then one metrics
 * update and one log line.
 */
import type { ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Metrics } from '../metrics.js';
import { BulkheadRejection } from '../resilience/bulkhead.js';
import type { Clock } from '../resilience/clock.js';
import type { ProxyRequest } from './proxy-request.js';
import { respond, writeLocalError, type Delivery } from './respond.js';
import { runAttempts } from './retry-loop.js';

export interface PipelineEnv {
  clock: Clock;
  metrics: Metrics;
  log: Logger;
  random?: () => number;
}

async function admitAndRun(req: ProxyRequest, res: ServerResponse, env: PipelineEnv): Promise<Delivery & { attempts: number }> {
  const { bulkhead, config } = req.upstream;
  if (!bulkhead.tryAcquire(req.priority)) {
    try {
      await bulkhead.acquire(req.priority, req.signal);
    } catch (err) {
      if (!(err instanceof BulkheadRejection)) throw err;
      if (err.reason === 'aborted') return { status: 499, outcome: 'cancelled', failure: 'none', attempts: 0 };
      env.metrics.bulkheadRejected.inc({ upstream: config.name, reason: err.reason });
      const message = `upstream ${config.name} is at its concurrency limit (${err.reason})`;
      writeLocalError(res, config.api, 503, 'overloaded', message, { 'x-breakwater-upstream': config.name, 'x-breakwater-attempts': '0' }, 1000);
      return { status: 503, outcome: 'local_error', failure: 'unavailable', code: 'overloaded', firstByteAt: env.clock.now(), attempts: 0 };
    }
  }
  try {
    const final = await runAttempts(req, env);
    return { ...(await respond(res, req, final, env.clock)), attempts: final.attempts };
  } finally {
    bulkhead.release(req.priority);
  }
}

export async function forward(req: ProxyRequest, res: ServerResponse, env: PipelineEnv): Promise<void> {
  const { metrics, clock } = env;
  const upstream = req.upstream.config.name;
  const d = await admitAndRun(req, res, env);
  const model = metrics.modelLabel(upstream, req.model);
  const seconds = (clock.now() - req.startedAt) / 1000;
  metrics.requests.inc({ upstream, model, class: d.failure, outcome: d.outcome });
  metrics.duration.observe({ upstream, outcome: d.outcome }, seconds);
  if (d.firstByteAt !== undefined) metrics.timeToFirstByte.observe({ upstream }, (d.firstByteAt - req.startedAt) / 1000);
  if (d.usage) {
    metrics.tokens.inc({ upstream, model, type: 'input' }, d.usage.input);
    metrics.tokens.inc({ upstream, model, type: 'output' }, d.usage.output);
  }
  env.log.info(
    {
      upstream,
      model: req.model,
      path: req.path.split('?', 1)[0], // the query may carry a key
      status: d.status,
      outcome: d.outcome,
      class: d.failure,
      code: d.code,
      attempts: d.attempts,
      durationMs: Math.round(seconds * 1000),
      ttfbMs: d.firstByteAt === undefined ? undefined : Math.round(d.firstByteAt - req.startedAt),
      tokens: d.usage,
    },
    'request',
  );
}
