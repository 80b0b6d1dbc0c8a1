/**
 * WebSockets pass through (the Realtime API, whose SDKs derive their URL
 * from the injected OPENAI_BASE_URL): an upgrade to `/<upstream>/<path>` is
 * tunnelled to that upstream and no other, with its credential rules (its
 * own `auth` in place of the app's), a handshake bounded by
 * `timeouts.firstByte`, its breaker (a handshake that fails counts; one that
 * succeeds counts as a success), and a bulkhead slot held for as long as the
 * tunnel is open. Frames are relayed as bytes, not read. On drain, open
 * tunnels are closed with close code 1001 (going away) to both sides.
 * Everything a tunnel holds is given back once, when either side closes.
 */
import { STATUS_CODES, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { Metrics } from '../../metrics.js';
import type { Clock } from '../../resilience/index.js';
import { classifyStatus, classifyTransportError } from '../dialects/classify.js';
import type { Dialect, LocalErrorCode } from '../dialects/dialect.js';
import { upstreamHeaders, upstreamPath } from '../upstream/tier-request.js';
import type { UpstreamState } from '../upstream/upstream-state.js';

/** What the server's routing made of the upgrade request. */
export interface TunnelRoute {
  upstream: UpstreamState;
  path: string;
  priority: number;
  dialect: Dialect;
  /** The app's headers, less connection and x-breakwater-* ones. */
  appHeaders: IncomingHttpHeaders;
}

/** Answers an upgrade request with an HTTP error in the API's shape, and closes the socket. */
export function refuseUpgrade(socket: Duplex, dialect: Dialect, status: number, code: LocalErrorCode, message: string): void {
  const body = dialect.errorBody(code, message);
  socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nx-breakwater-error: ${code}\r\nconnection: close\r\n\r\n${body}`);
  socket.once('finish', () => socket.destroy());
}

/** A close frame with `code`; masked, as a client's frames must be, when it goes to the upstream. */
function closeFrame(code: number, masked: boolean): Buffer {
  const payload = Buffer.from([code >> 8, code & 0xff]);
  if (!masked) return Buffer.concat([Buffer.from([0x88, payload.length]), payload]);
  const mask = randomBytes(4);
  const body = Buffer.from(payload.map((byte, i) => byte ^ mask[i % 4]!));
  return Buffer.concat([Buffer.from([0x88, 0x80 | payload.length]), mask, body]);
}

/**
 * Takes the app's credentials out of the subprotocols it offers: OpenAI's Realtime API lets a browser send its key as
 * `openai-insecure-api-key.<key>` (and its organization and project likewise), which must not reach an upstream that
 * has credentials of its own.
 */
function stripProtocolCredentials(headers: IncomingHttpHeaders): void {
  const offered = headers['sec-websocket-protocol'];
  if (typeof offered !== 'string') return;
  const kept = offered
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p !== '' && !/^openai-(insecure-api-key|organization|project)\./i.test(p));
  if (kept.length > 0) headers['sec-websocket-protocol'] = kept.join(', ');
  else delete headers['sec-websocket-protocol'];
}

/** The model a Realtime URL names (`?model=`), for the breaker's scope. */
const modelOf = (path: string) => new URLSearchParams(path.split('?')[1] ?? '').get('model')?.slice(0, 256) ?? undefined;

export class Tunnels {
  private readonly open = new Set<{ app: Duplex; upstream: Duplex }>();

  constructor(private readonly deps: { clock: Clock; metrics: Metrics; onOpen(): void; onClose(): void }) {}

  /** Tunnels open now. */
  get size(): number {
    return this.open.size;
  }

  /** Opens a tunnel for an upgrade request the server routed. */
  tunnel(req: IncomingMessage, app: Duplex, head: Buffer, route: TunnelRoute): void {
    const { upstream, dialect } = route;
    const { name } = upstream.config;
    if (!upstream.config.websockets) return refuseUpgrade(app, dialect, 403, 'invalid_request', `upstream ${name} does not take WebSockets (websockets: false)`);
    const auth = upstream.config.auth;
    if (auth?.missing !== undefined) return refuseUpgrade(app, dialect, 503, 'upstream_unavailable', `upstream ${name} has no credential yet: ${auth.missing} ${auth.problem}`);
    if (!upstream.bulkhead.tryAcquire(route.priority)) return refuseUpgrade(app, dialect, 503, 'overloaded', `upstream ${name} is at its concurrency limit`);
    const admission = upstream.choose(modelOf(route.path));
    if (!admission.ok) {
      upstream.bulkhead.release(route.priority);
      return refuseUpgrade(app, dialect, 503, 'circuit_open', `circuit breaker for upstream ${name} is open`);
    }
    const { endpoint, breaker, permit } = admission;
    const { clock, metrics } = this.deps;
    const started = clock.now();
    this.deps.onOpen();
    let released = false;
    /** Gives back what the tunnel holds, once. */
    const release = () => {
      if (released) return;
      released = true;
      upstream.bulkhead.release(route.priority);
      this.deps.onClose();
    };
    let settled = false;
    const settle = (failure: ReturnType<typeof classifyTransportError> | undefined) => {
      if (settled) return;
      settled = true;
      breaker.record(permit, { failure: failure !== undefined && upstream.config.breaker.failOn.has(failure), durationMs: clock.now() - started });
    };
    let appLeft = false;
    const fail = (status: number, code: LocalErrorCode, message: string, failure: ReturnType<typeof classifyTransportError>) => {
      if (appLeft) return;
      settle(failure);
      release();
      if (!app.destroyed) refuseUpgrade(app, dialect, status, code, `${name}: ${message}`);
    };
    // An app that leaves before the handshake is over costs the upstream nothing: the permit is given back, not failed.
    let upgraded = false;
    const leave = () => {
      if (upgraded || appLeft) return;
      appLeft = true;
      clock.clearTimer(timer);
      outgoing.destroy();
      if (!settled) {
        settled = true;
        breaker.release(permit);
      }
      release();
    };

    const headers = upstreamHeaders(route.appHeaders, upstream, null);
    delete headers['accept-encoding'];
    Object.assign(headers, { connection: 'Upgrade', upgrade: req.headers.upgrade ?? 'websocket' });
    if (upstream.config.auth) stripProtocolCredentials(headers);
    const outgoing = endpoint.client.request(endpoint.config.basePath + upstreamPath(upstream, route.path), { method: 'GET', headers }, (res) => {
      // Answered without switching protocols: the upstream's answer goes to the app.
      clock.clearTimer(timer);
      if (appLeft) return void res.resume();
      const status = res.statusCode ?? 502;
      const failure = classifyStatus(status, '', dialect.recognisers);
      settle(failure);
      release();
      res.resume();
      if (!app.destroyed) refuseUpgrade(app, dialect, status >= 400 ? status : 502, 'upstream_unavailable', `${name} answered ${status} to the WebSocket handshake`);
    });
    const timer = clock.setTimer(() => {
      outgoing.destroy();
      fail(504, 'upstream_timeout', 'the WebSocket handshake timed out (timeouts.firstByte)', 'timeout');
    }, upstream.config.timeouts.firstByteMs);
    outgoing.on('error', (err) => {
      clock.clearTimer(timer);
      fail(502, 'upstream_unavailable', `WebSocket handshake failed: ${err.message}`, classifyTransportError(err));
    });
    for (const event of ['error', 'end', 'close'] as const) app.once(event, leave);
    if (app.destroyed) leave();
    outgoing.on('upgrade', (res, socket, upstreamHead) => {
      clock.clearTimer(timer);
      if (appLeft) return void socket.destroy();
      upgraded = true;
      settle(undefined);
      // The upstream's 101 as it came, then the frames both ways.
      const lines = [`HTTP/1.1 101 ${res.statusMessage ?? 'Switching Protocols'}`];
      for (let i = 0; i < res.rawHeaders.length; i += 2) lines.push(`${res.rawHeaders[i]}: ${res.rawHeaders[i + 1]}`);
      app.write(lines.join('\r\n') + '\r\n\r\n');
      if (upstreamHead.length > 0) app.write(upstreamHead);
      if (head.length > 0) socket.write(head);
      const pair = { app, upstream: socket };
      this.open.add(pair);
      metrics.tunnels.inc({ upstream: name });
      const count = (direction: 'to-upstream' | 'to-app') => (chunk: Buffer) => metrics.tunnelBytes.inc({ upstream: name, direction }, chunk.length);
      app.on('data', count('to-upstream'));
      socket.on('data', count('to-app'));
      app.pipe(socket);
      socket.pipe(app);
      const close = () => {
        if (!this.open.delete(pair)) return;
        metrics.tunnels.dec({ upstream: name });
        app.destroy();
        socket.destroy();
        release();
      };
      for (const side of [app, socket]) {
        side.on('close', close);
        side.on('end', close);
        side.on('error', close);
      }
    });
    outgoing.end();
  }

  /** Closes every open tunnel with `code` (1001: going away) to both sides; resolves once the frames are written (at most `ms`). */
  closeAll(code = 1001, ms = 1000): Promise<void> {
    const written: Promise<void>[] = [];
    for (const { app, upstream } of this.open) {
      for (const [side, frame] of [[app, closeFrame(code, false)], [upstream, closeFrame(code, true)]] as const) {
        written.push(new Promise((resolve) => side.end(frame, () => resolve())));
      }
    }
    const { clock } = this.deps;
    return new Promise((resolve) => {
      const timer = clock.setTimer(resolve, ms);
      void Promise.all(written).then(() => {
        clock.clearTimer(timer);
        resolve();
      });
    });
  }
}
