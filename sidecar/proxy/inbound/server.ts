/**
 * inbound/ — the app's side of the data plane: the HTTP server the app calls
 * (this file), where a request goes (route.ts), reading its body once under
 * the shared memory budget (read-request.ts, body-budget.ts), writing the
 * outcome back (write-outcome.ts), the metrics and log line of every finished
 * request (observe.ts), and WebSocket upgrades tunnelled as bytes
 * (websocket-tunnel.ts).
 *
 * The data plane's HTTP server: routes `/<upstream>/<path>` to a configured
 * upstream (and nowhere else), reads the request once, runs it through the
 * pipeline, writes the outcome and observes it. Whatever happens, the
 * request gets an answer and a stream's body is given up at the end, so
 * every layer's hold on it is released.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { firstHeader } from '../../../lib/index.js';
import type { InboundLimits, RuntimeConfig } from '../../config/index.js';
import type { Metrics } from '../../metrics.js';
import { AbortFlag, type Clock } from '../../resilience/index.js';
import type { SloTracker } from '../../slo-tracker.js';
import type { Dialect } from '../dialects/dialect.js';
import { openai } from '../dialects/openai.js';
import type { Handler, Outcome, ProxyRequest, RequestContext } from '../handler.js';
import { RequestReport } from '../request-report.js';
import type { TracingSwitch } from '../trace-scope.js';
import { startRequest } from '../../tracing/request-span.js';
import { upstreamHeaders } from '../upstream/tier-request.js';
import type { UpstreamState } from '../upstream/upstream-state.js';
import { BodyBudget, type BodyLease } from './body-budget.js';
import { observe } from './observe.js';
import { ABANDONED, inspectBody, OVER_BUDGET, readBody } from './read-request.js';
import { appHeaders, Refusal, route, type Routed } from './route.js';
import { refuseUpgrade, Tunnels } from './websocket-tunnel.js';
import { writeLocalError, writeOutcome, type Delivery } from './write-outcome.js';

export interface ProxyServerDeps {
  pipeline: Handler;
  config(): RuntimeConfig | undefined;
  upstream(name: string): UpstreamState | undefined;
  clock: Clock;
  metrics: Metrics;
  log: Logger;
  /** The policy's SLOs, which every finished request counts towards. */
  slo(): SloTracker | undefined;
  /** The tracer in force (none while tracing is off). */
  tracing: TracingSwitch;
}

export interface ProxyServer {
  server: Server;
  /** Requests being handled now, and WebSocket tunnels open. */
  readonly inFlight: number;
  /** WebSocket tunnels open now (a drain closes them with 1001: they do not make it unclean). */
  readonly openTunnels: number;
  /** Bytes of bodies (requests, plain answers) held now, across all requests. */
  readonly bufferedBytes: number;
  /** Applies a config's header and request deadlines and connection cap (to connections from now on). */
  applyInbound(limits: InboundLimits): void;
  /** Stop taking new work: new requests on open connections are still answered, with connection: close. */
  startDraining(): void;
  /** Closes the open WebSocket tunnels with 1001 (going away), at the end of a drain; resolves once the frames are written. */
  closeTunnels(): Promise<void>;
  /** Resolves once no request is in flight. */
  idle(): Promise<void>;
}

/** A bug inside the sidecar still answers the app: 502 if nothing was written yet, else the connection is cut. */
function failedInside(res: ServerResponse, dialect: Dialect, err: unknown, log: Logger): void {
  log.error({ err }, 'request failed inside the sidecar');
  if (!res.headersSent) writeLocalError(res, dialect, 502, 'upstream_unavailable', 'the sidecar failed to handle this request');
  else res.destroy();
}

export function createProxyServer(deps: ProxyServerDeps): ProxyServer {
  const { clock } = deps;
  let inFlight = 0;
  let draining = false;
  const idleWaiters: (() => void)[] = [];

  const bodies = new BodyBudget(() => deps.config()?.maxBufferedBytes ?? 0);
  const finished = () => {
    if (--inFlight === 0) idleWaiters.splice(0).forEach((wake) => wake());
  };
  // An open tunnel is work in flight: a drain waits for it, then closes it.
  const tunnels = new Tunnels({ clock, metrics: deps.metrics, onOpen: () => inFlight++, onClose: finished });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const routed = route(req, deps);
    if (routed instanceof Refusal) {
      writeLocalError(res, routed.dialect, routed.status, routed.code, routed.message);
      req.resume();
      return;
    }
    const lease = bodies.lease();
    try {
      await proxy(req, res, routed, lease);
    } finally {
      lease.release(); // the bytes of its body and answers, however the request ended
    }
  }

  async function proxy(req: IncomingMessage, res: ServerResponse, routed: Routed, lease: BodyLease): Promise<void> {
    const { upstream, path, dialect } = routed;
    const startedAt = clock.now();
    const appGone = new AbortFlag();
    res.on('close', () => {
      if (!res.writableFinished) appGone.abort();
    });
    const read = await readBody(req, upstream.config.retry.maxBodyBytes, lease);
    const { body, stream: bodyStream } = read === OVER_BUDGET || read === ABANDONED ? { body: null, stream: undefined } : read;
    const forwarded = appHeaders(req);
    const { stream: asked, ...fields } = inspectBody(body, dialect);
    const stream = asked ?? dialect.streamsByDefault;
    // Every stream's usage is counted: a stream that would not report it is asked to (its usage then hidden from the app).
    const withUsage = stream && body && !fields.usageAsked && !upstream.refusesUsageAsk ? dialect.askUsage?.(body) : undefined;
    const sent = withUsage && lease.take(withUsage.length - body!.length) ? withUsage : body;
    const request: ProxyRequest = {
      upstream,
      method: req.method ?? 'GET',
      appPath: path,
      appHeaders: forwarded,
      stream,
      headers: upstreamHeaders(forwarded, upstream, sent, bodyStream ? firstHeader(req.headers, 'content-length') : undefined),
      body: sent,
      bodyStream,
      ...fields,
      usageHidden: sent !== body || undefined,
      priority: routed.priority,
    };
    // While tracing is off this is the one check the request pays: no span, no context, no header.
    const { tracer } = deps.tracing;
    const trace = tracer && startRequest(tracer, req.headers, request);
    const ctx: RequestContext = { dialect, primary: upstream.config.name, startedAt, deadline: startedAt + routed.totalMs, signal: appGone, memory: lease, report: new RequestReport(), trace };
    if (draining) res.setHeader('connection', 'close');
    if (read === ABANDONED) {
      // Counted like any request the app gave up on; nothing was sent upstream.
      res.destroy();
      observe(request, ctx, { status: 499, outcome: 'cancelled', failure: 'none', tier: 'primary' }, deps);
      return;
    }
    if (read === OVER_BUDGET) {
      // The rest of the body is read and dropped, and the connection kept: closing it while the app still sends
      // would reset it, and the app would lose the 503. inbound.requestTimeout bounds how long that takes.
      writeLocalError(res, dialect, 503, 'overloaded', 'the sidecar holds as many bodies as limits.maxBufferedBytes allows; retry shortly', {}, 1000);
      req.resume();
      observe(request, ctx, { status: 503, outcome: 'local_error', failure: 'unavailable', code: 'overloaded', tier: 'primary' }, deps);
      return;
    }
    let outcome: Outcome | undefined;
    let delivery: Delivery;
    try {
      outcome = await deps.pipeline(request, ctx);
      delivery = await writeOutcome(res, outcome, ctx, clock);
    } catch (err) {
      failedInside(res, dialect, err, deps.log);
      delivery = { status: 502, outcome: 'local_error', failure: 'unavailable', code: 'internal_error', tier: 'primary' };
    } finally {
      if (outcome?.kind === 'stream') outcome.body.cancel();
    }
    observe(request, ctx, delivery, deps);
  }

  // Slow or idle clients are cut off: headers and the whole request (not the answer, which may stream for long) have deadlines, checked every 500 ms.
  const server = createServer({ keepAliveTimeout: 65_000, connectionsCheckingInterval: 500 }, (req, res) => {
    inFlight++;
    handle(req, res)
      .catch((err: unknown) => failedInside(res, openai, err, deps.log))
      .finally(finished);
  });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    const routed = route(req, deps);
    if (routed instanceof Refusal) return refuseUpgrade(socket, routed.dialect, routed.status, routed.code, routed.message);
    if (String(req.headers.upgrade).toLowerCase() !== 'websocket') return refuseUpgrade(socket, routed.dialect, 400, 'invalid_request', 'only WebSocket upgrades are taken');
    if (draining) return refuseUpgrade(socket, routed.dialect, 503, 'overloaded', 'the sidecar is draining');
    tunnels.tunnel(req, socket, head, { ...routed, appHeaders: appHeaders(req) });
  });
  const applyInbound = (limits: InboundLimits) => {
    server.headersTimeout = limits.headersTimeoutMs;
    server.requestTimeout = limits.requestTimeoutMs;
    server.maxConnections = limits.maxConnections;
  };
  const initial = deps.config();
  if (initial) applyInbound(initial.inbound);
  return {
    server,
    get inFlight() {
      return inFlight;
    },
    get openTunnels() {
      return tunnels.size;
    },
    get bufferedBytes() {
      return bodies.held;
    },
    applyInbound,
    closeTunnels: () => tunnels.closeAll(1001),
    startDraining() {
      draining = true;
      server.close();
      server.closeIdleConnections();
    },
    idle() {
      return inFlight === 0 ? Promise.resolve() : new Promise((resolve) => idleWaiters.push(resolve));
    },
  };
}
