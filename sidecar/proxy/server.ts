/**
 * The data plane's HTTP server: routes `/<upstream>/<path>` to a configured
 * upstream (and nowhere else), reads the request once, runs it through the
 * pipeline, writes the outcome and observes it. Whatever happens, the
 * request gets an answer and a stream's body is given up at the end, so
 * every layer's hold on it is released.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { parseDuration } from '../../api/index.js';
import { CONNECTION_HEADERS, firstHeader } from '../../lib/index.js';
import type { InboundLimits, RuntimeConfig } from '../config/index.js';
import type { Metrics } from '../metrics.js';
import type { Clock } from '../resilience/index.js';
import { dialectFor, type Dialect } from './dialects/dialect.js';
import { openai } from './dialects/openai.js';
import type { Handler, Outcome, ProxyRequest, RequestContext } from './handler.js';
import { observe } from './observe.js';
import type { SloTracker } from '../slo-tracker.js';
import { BodyBudget, type BodyLease } from './body-budget.js';
import { ABANDONED, inspectBody, OVER_BUDGET, readBody } from './read-request.js';
import { upstreamHeaders } from './tier-request.js';
import type { UpstreamState } from './upstream-state.js';
import { writeLocalError, writeOutcome, type Delivery } from './write-outcome.js';
import { refuseUpgrade, Tunnels } from './websocket-tunnel.js';
import type { Duplex } from 'node:stream';

/** Request headers never forwarded: connection headers, the host, and the app's words to the sidecar. */
const NOT_FORWARDED = new Set([...CONNECTION_HEADERS, 'host', 'expect', 'x-breakwater-priority', 'x-breakwater-timeout']);

function appHeaders(req: IncomingMessage): ProxyRequest['appHeaders'] {
  const out: ProxyRequest['appHeaders'] = {};
  for (const [key, value] of Object.entries(req.headers)) if (!NOT_FORWARDED.has(key)) out[key] = value;
  return out;
}

export interface ProxyServerDeps {
  pipeline: Handler;
  config(): RuntimeConfig | undefined;
  upstream(name: string): UpstreamState | undefined;
  clock: Clock;
  metrics: Metrics;
  log: Logger;
  /** The policy's SLOs, which every finished request counts towards. */
  slo(): SloTracker | undefined;
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

/** A `.` or `..` path segment, also percent-encoded: it would leave the upstream's base path. */
const DOT_SEGMENT = /(^|\/)(\.|%2e){1,2}(\/|\?|$)/i;
/**
 * A separator an upstream or a proxy before it may decode or read as `/` (an encoded slash, a backslash,
 * encoded or not), or an encoded NUL: each can hide a `..` segment from the check above.
 */
const HIDDEN_SEPARATOR = /%2f|%5c|\\|%00|#/i;

/** A request the sidecar refuses before the pipeline: the answer to write instead. */
class Refusal {
  constructor(
    readonly status: number,
    readonly code: 'unknown_upstream' | 'overloaded' | 'invalid_request',
    readonly message: string,
    readonly dialect: Dialect = openai,
  ) {}
}

/** The upstream, priority class and total timeout a request asks for, or why it cannot have them. */
interface Routed {
  upstream: UpstreamState;
  path: string;
  priority: number;
  totalMs: number;
  dialect: Dialect;
}

function route(req: IncomingMessage, deps: ProxyServerDeps): Refusal | Routed {
  const url = req.url ?? '/';
  let nameEnd = 1;
  while (nameEnd < url.length && url[nameEnd] !== '/' && url[nameEnd] !== '?') nameEnd++;
  const name = url.slice(1, nameEnd);
  const path = url[nameEnd] === '/' ? url.slice(nameEnd) : `/${url.slice(nameEnd)}`;
  const config = deps.config();
  const upstream = deps.upstream(name);
  if (!config) return new Refusal(503, 'overloaded', 'no config loaded yet');
  if (!upstream) {
    const known = [...config.upstreams.keys()].join(', ');
    return new Refusal(404, 'unknown_upstream', `no upstream named "${name.slice(0, 64)}"; known upstreams: ${known} (call http://127.0.0.1:15001/<upstream>/<path>)`);
  }
  const dialect = dialectFor(upstream.config.api, path, req.method);
  // A compressed body would hide its model, stream flag, caps and text from the sidecar, and its size from the guards.
  const encoding = firstHeader(req.headers, 'content-encoding')?.trim().toLowerCase();
  if (encoding && encoding !== 'identity' && (dialect.composeAnswer || upstream.config.guards.active)) {
    return new Refusal(415, 'invalid_request', `the sidecar reads request bodies: send this one without content-encoding (got ${encoding.slice(0, 32)})`, dialect);
  }
  const pathOnly = path.split('?', 1)[0]!;
  if (DOT_SEGMENT.test(pathOnly)) return new Refusal(400, 'invalid_request', 'the path may not hold "." or ".." segments', dialect);
  if (HIDDEN_SEPARATOR.test(pathOnly)) return new Refusal(400, 'invalid_request', 'the path may not hold an encoded slash, a backslash, an encoded NUL or a #', dialect);
  const { priorities } = config;
  const priorityName = firstHeader(req.headers, 'x-breakwater-priority');
  const priority = priorityName === undefined ? priorities.defaultIndex : priorities.classes.findIndex((c) => c.name === priorityName);
  if (priority < 0) {
    const names = priorities.classes.map((c) => c.name).join(', ');
    return new Refusal(400, 'invalid_request', `x-breakwater-priority "${priorityName!.slice(0, 64)}" is not a class of this policy (${names})`, dialect);
  }
  let totalMs = upstream.config.timeouts.totalMs;
  const timeoutHeader = firstHeader(req.headers, 'x-breakwater-timeout');
  if (timeoutHeader !== undefined) {
    let asked: number;
    try {
      asked = parseDuration(timeoutHeader);
    } catch {
      return new Refusal(400, 'invalid_request', `x-breakwater-timeout "${timeoutHeader.slice(0, 64)}" is not a duration such as 500ms or 30s`, dialect);
    }
    totalMs = Math.min(totalMs, asked); // may only shorten
  }
  return { upstream, path, priority, totalMs, dialect };
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
    const appGone = new AbortController();
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
    const ctx: RequestContext = { dialect, primary: upstream.config.name, startedAt, deadline: startedAt + routed.totalMs, signal: appGone.signal, mode: 'normal', attempts: 0, memory: lease };
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
