/**
 * sidecar/ — the per-pod proxy. This file assembles it: config state
 * (sidecar-state.ts, fed from config/), the data plane (proxy/: read
 * proxy/pipeline.ts first, it lists the layers a request goes through), the
 * admin server (admin/), metrics and logs, the graceful drain, and the
 * breakers and budgets kept across restarts (kept-state.ts). The resilience state
 * machines live in resilience/.
 */
import type { Server } from 'node:http';
import { createAdaptorServer } from '@hono/node-server';
import type { Logger } from 'pino';
import { listen, type HostPort } from '../lib/index.js';
import { createAdminApp } from './admin/admin-app.js';
import { fleetGauges } from './fleet/index.js';
import { keepState } from './kept-state.js';
import type { RuntimeConfig } from './config/index.js';
import { createLogger } from './log.js';
import { createMetrics } from './metrics.js';
import { buildPipeline } from './proxy/pipeline.js';
import { createProxyServer } from './proxy/inbound/server.js';
import { type Clock, systemClock } from './resilience/index.js';
import { SidecarState } from './sidecar-state.js';
import { Tracing } from './tracing/index.js';

const DEFAULT_DRAIN_TIMEOUT_MS = 30_000;

export interface SidecarOptions {
  /** The config to start with; without one the sidecar is not ready until one is applied. */
  config?: RuntimeConfig;
  listen: HostPort;
  admin: HostPort;
  clock?: Clock;
  log?: Logger;
  random?: () => number;
  /** Called once a drain started by SIGTERM or /quitquitquit has finished. */
  onDrained?: (clean: boolean) => void;
  /** Where open breakers and spent budgets are kept across restarts (beside the last good config); none when unset. */
  stateFile?: string;
}

export interface Sidecar {
  dataUrl: string;
  adminUrl: string;
  state: SidecarState;
  /** Puts a config in force; one that cannot be applied is rejected (the error) and the last good one stays. */
  apply(config: RuntimeConfig): { ok: true } | { ok: false; error: string };
  /** Stops taking new connections, lets in-flight requests finish within drainTimeout, then closes. True when all finished. */
  drain(): Promise<boolean>;
}

/** Redis errors while it is away come every few seconds: log one a minute. */
function redisErrorLogger(log: Logger, clock: Clock, message: string): (err: Error) => void {
  let last = -Infinity;
  return (err) => {
    if (clock.now() - last < 60_000) return;
    last = clock.now();
    log.warn({ err: err.message.slice(0, 512) }, message);
  };
}

/** Every limit kept for the fleet, and whether it spends a local share, for the gauges. */
function* fleetCounters(state: SidecarState) {
  for (const { scope, upstream = '', budget } of state.budgets.all()) {
    if ('fleet' in budget) yield { kind: 'budget', scope, upstream, mode: budget.snapshot().fleet.store };
  }
  for (const [upstream, limiter] of state.fleet.rateLimiters()) yield { kind: 'rate-limit', scope: 'upstream', upstream, mode: limiter.view().mode };
}

export async function startSidecar(options: SidecarOptions): Promise<Sidecar> {
  const clock = options.clock ?? systemClock;
  const log = options.log ?? createLogger();
  const metrics = createMetrics({
    live: () => state.live(),
    mode: () => state.mode(),
    bufferedBytes: () => proxy.bufferedBytes,
    budgets: () => state.budgets.all(),
    slo: () => state.slo,
  });
  const kept = options.stateFile ? keepState(options.stateFile, log, clock, () => state) : undefined;
  const state: SidecarState = new SidecarState(
    clock,
    metrics,
    (t) => {
      log.warn(t, 'circuit breaker transition');
      kept?.changed();
    },
    (from, to) => log.warn({ from, to }, 'degradation mode changed'),
    redisErrorLogger(log, clock, 'shared cache (Redis) unavailable; answering from the local cache only'),
    (h) => log.warn(h, 'endpoint health changed'),
    redisErrorLogger(log, clock, 'shared store (Redis) unavailable; fleet budgets and rate limits spend local shares'),
  );
  const fleetMetrics = fleetGauges(metrics.registry, {
    status: () => state.fleet.status(),
    pods: () => state.fleet.pods(),
    counters: () => fleetCounters(state),
  });
  state.fleet.onWait = (ms) => fleetMetrics.storeWait.observe(ms / 1000);
  // OpenTelemetry tracing, off unless a policy turns it on: its SDK is loaded then, and only then.
  const tracing = new Tracing(log, { exported: (n) => metrics.traceSpansExported.inc({}, n), dropped: (reason, n) => metrics.traceSpansDropped.inc({ reason }, n) });
  if (options.config) {
    state.apply(options.config);
    tracing.apply(options.config.tracing);
    kept?.restore();
  }
  const pipeline = buildPipeline({
    clock,
    metrics,
    random: options.random,
    upstream: (name) => state.upstream(name),
    cache: () => state.cache,
    degradation: () => state.degradation,
    degradedSettings: () => state.config!.degradation,
    queued: () => state.queued(),
    budgets: () => state.budgets,
    budgetsSpent: () => kept?.changed(),
    fleetLimiter: (upstream) => state.fleet.rateLimiter(upstream),
  });
  const proxy = createProxyServer({ pipeline, config: () => state.config, upstream: (name) => state.upstream(name), clock, metrics, log, slo: () => state.slo, tracing });
  let drainPromise: Promise<boolean> | undefined;

  const drain = (): Promise<boolean> =>
    (drainPromise ??= (async () => {
      const timeoutMs = state.config?.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS;
      log.info({ inFlight: proxy.inFlight, timeoutMs }, 'draining');
      proxy.startDraining();
      for (const upstream of state.live()) upstream.stopHealthChecks();
      let timer: unknown;
      const timeUp = new Promise<void>((resolve) => (timer = clock.setTimer(resolve, timeoutMs)));
      await Promise.race([proxy.idle(), timeUp]);
      clock.clearTimer(timer);
      const clean = proxy.inFlight === proxy.openTunnels;
      await proxy.closeTunnels();
      proxy.server.closeAllConnections();
      adminServer.close();
      adminServer.closeAllConnections?.();
      kept?.saveNow();
      await tracing.shutdown();
      state.close();
      log.info({ clean, abandoned: proxy.inFlight }, 'drained');
      options.onDrained?.(clean);
      return clean;
    })());

  const adminApp = createAdminApp({
    state,
    metrics,
    isReady: () => drainPromise === undefined && state.ready(),
    isDraining: () => drainPromise !== undefined,
    bufferedBytes: () => proxy.bufferedBytes,
    quit: () => void drain(),
  });
  const adminServer = createAdaptorServer({ fetch: adminApp.fetch }) as Server;
  const [dataUrl, adminUrl] = await Promise.all([listen(proxy.server, options.listen), listen(adminServer, options.admin)]);
  log.info({ dataUrl, adminUrl, config: options.config?.version ?? null }, 'sidecar listening');
  log.flush();
  return {
    dataUrl,
    adminUrl,
    state,
    apply(config) {
      try {
        state.apply(config);
        proxy.applyInbound(config.inbound);
        tracing.apply(config.tracing);
        kept?.restore();
      } catch (err) {
        const error = (err as Error).message;
        log.error({ config: config.version, error }, 'config rejected; the last good config stays in force');
        return { ok: false, error };
      }
      log.info({ config: config.version }, 'config applied');
      return { ok: true };
    },
    drain,
  };
}
