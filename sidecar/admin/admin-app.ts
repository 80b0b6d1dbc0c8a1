/**
 * admin/ — the admin server (port 15021, where probes reach it): health, readiness,
 * Prometheus metrics and a JSON status; mutations only from loopback.
 */
import { Hono, type Context } from 'hono';
import { getConnInfo } from '@hono/node-server/conninfo';
import { budgetStatus } from '../budget-reports.js';
import type { Metrics } from '../metrics.js';
import type { SidecarState } from '../sidecar-state.js';

export interface AdminDeps {
  state: SidecarState;
  metrics: Metrics;
  /** Ready: a config is loaded, its first health probes have answered, and the sidecar is not draining. */
  isReady(): boolean;
  isDraining(): boolean;
  /** Bytes of bodies (requests, plain answers) the data port holds now. */
  bufferedBytes(): number;
  /** Starts a graceful shutdown (POST /quitquitquit). */
  quit(): void;
}

function fromLoopback(c: Context): boolean {
  const address = getConnInfo(c).remote.address ?? '';
  return address.startsWith('127.') || address === '::1' || address.startsWith('::ffff:127.');
}

/** Breakers, queues, budgets, held body bytes and config version, as /status shows them. */
export function statusReport(state: SidecarState, ready: boolean, draining: boolean, bufferedBytes: number) {
  return {
    ready,
    draining,
    mode: state.mode(),
    sharedCache: state.cache.sharedStatus,
    config: state.config?.version ?? null,
    bufferedBytes,
    upstreams: [...state.live()].map((u) => ({
      name: u.name,
      endpoints: u.endpoints.map((e) => ({ origin: e.config.origin, weight: e.config.weight, inFlight: e.outstanding, ...(e.health ? { health: e.health.status } : {}), ...(e.queue ? { serverQueue: e.queue.waiting ?? null } : {}), ...(e.limit ? { limit: e.limit.limit, limitPhase: e.limit.phase } : {}) })),
      loadBalancing: u.config.loadBalancing,
      api: u.config.api,
      // Where its credential comes from is not said, nor its value: only that one the policy names is missing, and why.
      ...(u.config.auth?.missing !== undefined ? { credentialMissing: u.config.auth.missing, credentialProblem: u.config.auth.problem } : {}),
      // maxConcurrent: the limit in force now (learnt, in mode adaptive), within min and max.
      bulkhead: { mode: u.config.bulkhead.adaptive ? 'adaptive' : 'fixed', inFlight: u.bulkhead.active, queued: u.bulkhead.waiting, maxConcurrent: u.bulkhead.limit, min: u.limitBounds.min, max: u.limitBounds.max, ...(u.config.bulkhead.fairBy ? { fairBy: u.config.bulkhead.fairBy } : {}) },
      retryBudget: { allowance: Math.floor(u.budget.allowance()) },
      breakers: u.breakerEntries().map(([scope, b]) => ({ scope, state: b.stateName, remainingOpenMs: Math.round(b.remainingOpenMs) })),
    })),
    budgets: budgetStatus(state.budgets),
    fleet: {
      ...state.fleet.status(),
      rateLimits: [...state.fleet.rateLimiters()].map(([upstream, limiter]) => {
        const view = limiter.view();
        return { upstream, slotEndsAt: new Date(view.windowEndsAt).toISOString(), mode: view.mode, storeAvailable: view.mode === 'shared', limits: view.limits, fleetTaken: view.fleetSpent };
      }),
    },
  };
}

function notReadyBecause(deps: AdminDeps): string {
  if (deps.isDraining()) return 'draining';
  return deps.state.config === undefined ? 'no config loaded' : 'waiting for the first health probes';
}

export function createAdminApp(deps: AdminDeps): Hono {
  const app = new Hono();
  app.get('/healthz', (c) => c.text('ok'));
  app.get('/readyz', (c) => (deps.isReady() ? c.text('ready') : c.text(notReadyBecause(deps), 503)));
  app.get('/metrics', async (c) => c.body(await deps.metrics.registry.metrics(), 200, { 'content-type': deps.metrics.registry.contentType }));
  app.get('/status', (c) => c.json(statusReport(deps.state, deps.isReady(), deps.isDraining(), deps.bufferedBytes())));
  app.use('*', async (c, next) => {
    if (c.req.method !== 'GET' && !fromLoopback(c)) return c.json({ error: 'admin mutations are accepted from loopback only' }, 403);
    await next();
  });
  app.post('/breakers/reset', (c) => {
    const only = c.req.query('upstream');
    const reset: string[] = [];
    for (const u of deps.state.live()) {
      if (only !== undefined && u.name !== only) continue;
      u.resetBreakers();
      reset.push(u.name);
    }
    if (only !== undefined && reset.length === 0) return c.json({ error: `no upstream named "${only}"` }, 404);
    return c.json({ reset });
  });
  app.post('/quitquitquit', (c) => {
    // Answer first: the drain closes this server's connections.
    setTimeout(deps.quit, 0);
    return c.json({ draining: true });
  });
  return app;
}
