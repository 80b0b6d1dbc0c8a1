/**
 * Writes an outcome to the app, and only that: an answer passed through
 * (with the sidecar's x-breakwater-* headers), an answer the sidecar makes
 * itself in the app's API's error shape, or a stream relayed chunk by chunk
 * until it ends; a stream that breaks after data reached the app ends with
 * a well-formed error event. Returns what was delivered, for metrics and logs.
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { CONNECTION_HEADERS, isSafeHeaderValue } from '../../../lib/index.js';
import type { AbortWatch, Clock } from '../../resilience/index.js';
import type { Dialect, LocalErrorCode, TokenUsage } from '../dialects/dialect.js';
import type { ChainFailure, Outcome, ServedContext, StreamOutcome } from '../handler.js';
import { bytesOf, type StreamEnd } from '../streams/stream-body.js';

/** `degraded`: answered by the static tier. */
export type DeliveryOutcome = 'ok' | 'upstream_error' | 'local_error' | 'cancelled' | 'degraded';

/** What reached the app. */
export interface Delivery {
  status: number;
  outcome: DeliveryOutcome;
  failure: ChainFailure | 'none';
  /** Who answered: "primary", a fallback upstream's name, "cache" or "static". */
  tier: string;
  /** Clock time the first byte went to the app. */
  firstByteAt?: number;
  usage?: TokenUsage;
  code?: string;
}

/** An answer the sidecar makes itself, in the app's API's error shape. */
export function writeLocalError(
  res: ServerResponse,
  dialect: Dialect,
  status: number,
  code: LocalErrorCode,
  message: string,
  extra: OutgoingHttpHeaders = {},
  retryAfterMs?: number,
): void {
  const body = dialect.errorBody(code, message);
  const headers: OutgoingHttpHeaders = { ...extra, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'x-breakwater-error': code };
  if (retryAfterMs !== undefined) headers['retry-after'] = String(Math.max(1, Math.ceil(retryAfterMs / 1000)));
  res.writeHead(status, headers).end(body);
}

function passedOn(headers: IncomingHttpHeaders, extra: OutgoingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const key in headers) {
    const value = headers[key];
    if (value !== undefined && !CONNECTION_HEADERS.has(key)) out[key] = value;
  }
  return Object.assign(out, extra);
}

/** Who answered, as x-breakwater-fallback and the metrics name it. */
function tierOf(outcome: Outcome, ctx: ServedContext): string {
  if (outcome.kind === 'cancelled') return 'primary';
  if (outcome.kind === 'answer' && outcome.composed) return outcome.composed;
  return outcome.upstream === ctx.primary ? 'primary' : outcome.upstream;
}

function breakwaterHeaders(outcome: Exclude<Outcome, { kind: 'cancelled' }>, ctx: ServedContext, tier: string): OutgoingHttpHeaders {
  const { mode, attempts, hedge } = ctx.report;
  const h: OutgoingHttpHeaders = { 'x-breakwater-upstream': outcome.upstream, 'x-breakwater-attempts': String(attempts) };
  // The model comes from the app: echoed only when it is a legal, short header value.
  if (outcome.model && isSafeHeaderValue(outcome.model)) h['x-breakwater-model'] = outcome.model;
  if (tier !== 'primary') h['x-breakwater-fallback'] = tier;
  if (mode !== 'normal') h['x-breakwater-mode'] = mode;
  if (hedge) h['x-breakwater-hedge'] = hedge;
  return h;
}

/** Waits until `res` can take more (true), or the app leaves or reads nothing for `ms` (false). */
function drained(res: ServerResponse, signal: AbortWatch, clock: Clock, ms: number): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const done = (ok: boolean) => {
      res.off('drain', onDrain);
      signal.removeEventListener('abort', onAbort);
      clock.clearTimer(timer);
      resolve(ok);
    };
    const onDrain = () => done(true);
    const onAbort = () => done(false);
    const timer = clock.setTimer(() => done(false), ms);
    res.on('drain', onDrain);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

export async function writeOutcome(res: ServerResponse, outcome: Outcome, ctx: ServedContext, clock: Clock): Promise<Delivery> {
  const tier = tierOf(outcome, ctx);
  switch (outcome.kind) {
    case 'cancelled':
      return { status: 499, outcome: 'cancelled', failure: 'none', tier };
    case 'local':
      writeLocalError(res, ctx.dialect, outcome.status, outcome.code, outcome.message, breakwaterHeaders(outcome, ctx, tier), outcome.retryAfterMs);
      return { status: outcome.status, outcome: 'local_error', failure: outcome.failure, code: outcome.code, firstByteAt: clock.now(), tier };
    case 'answer': {
      const extra = breakwaterHeaders(outcome, ctx, tier);
      if (outcome.stopped) extra['x-breakwater-retry-stopped'] = outcome.stopped;
      extra['content-length'] = outcome.body.length;
      res.writeHead(outcome.status, passedOn(outcome.headers, extra)).end(outcome.body);
      const ok = outcome.failure === undefined;
      return {
        status: outcome.status,
        outcome: outcome.composed === 'static' ? 'degraded' : ok ? 'ok' : 'upstream_error',
        failure: outcome.failure ?? 'none',
        firstByteAt: clock.now(),
        tier,
        usage: outcome.usage,
      };
    }
    case 'stream':
      return relay(res, outcome, ctx, clock, tier);
  }
}

/**
 * Relays a stream to the app: a pump that writes what the body has and, when it has nothing yet, asks the body to
 * wake it, which it does from the upstream's data event. A waiting stream holds that callback alone (no promise,
 * no suspended function), and a chunk reaches the app's socket in the call that read it.
 */
function relay(res: ServerResponse, stream: StreamOutcome, ctx: ServedContext, clock: Clock, tier: string): Promise<Delivery> {
  res.writeHead(stream.status, passedOn(stream.headers, breakwaterHeaders(stream, ctx, tier)));
  const firstByteAt = clock.now();
  /** The number of the last event sent, for an API that numbers them (its error event follows it). */
  let sequence: number | undefined;
  const { promise, resolve, reject } = Promise.withResolvers<Delivery>();
  const pump = (appReads = true): void => {
    try {
      if (!appReads) {
        stream.body.cancel();
        res.destroy();
        return resolve({ status: stream.status, outcome: 'cancelled', failure: 'none', firstByteAt, tier });
      }
      for (;;) {
        const next = stream.body.poll();
        if (next === undefined) return stream.body.whenReady(pump);
        if (next.kind !== 'chunk') return resolve(endStream(res, stream, next, ctx, sequence, { status: stream.status, firstByteAt, tier }));
        sequence = next.events[next.events.length - 1]?.read.sequence ?? sequence;
        if (res.write(bytesOf(next))) continue;
        // An app that stops reading holds its slot no longer than the stream-idle timeout and the deadline allow.
        void drained(res, ctx.signal, clock, Math.min(stream.idleMs, ctx.deadline - clock.now())).then(pump);
        return;
      }
    } catch (err) {
      reject(err);
    }
  };
  pump();
  return promise;
}

/** Ends the app's stream as the body ended: complete, cancelled, or failed (with an error event where the stream has events). */
function endStream(res: ServerResponse, stream: StreamOutcome, end: StreamEnd, ctx: ServedContext, sequence: number | undefined, sent: Pick<Delivery, 'status' | 'firstByteAt' | 'tier'>): Delivery {
  if (end.kind === 'complete') {
    res.end();
    return { ...sent, outcome: 'ok', failure: 'none', usage: end.usage };
  }
  if (end.kind === 'cancelled') {
    res.destroy();
    return { ...sent, outcome: 'cancelled', failure: 'none' };
  }
  const code = end.failure === 'timeout' ? 'upstream_timeout' : 'stream_interrupted';
  const message = `${stream.upstream}: ${end.detail}`;
  // Bytes relayed as they came have no error event: the app's connection is cut, so its client sees a broken body.
  if (stream.framing) res.end(stream.framing.error(ctx.dialect.streamError(code, message, sequence), code, message));
  else res.destroy();
  return { ...sent, outcome: 'upstream_error', failure: end.failure, code };
}
