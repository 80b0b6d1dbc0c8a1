/**
 * Writes the final answer to the app: an upstream answer passed through, an
 * answer the sidecar makes itself in the API's error shape, or a stream relayed
 * chunk by chunk under its idle timeout. A stream that breaks after data
 * reached the app ends with a well-formed error event and counts against the
 * breaker; one that ends without its API's terminator does too.
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { FailureClass } from '../../api/index.js';
import type { Clock } from '../resilience/clock.js';
import { errorBody, streamErrorEvent, streamTerminated, tokenUsage, type TokenUsage } from './api-dialects.js';
import type { ProxyRequest } from './proxy-request.js';
import type { Final } from './retry-loop.js';

/** `degraded`: answered by the static tier. */
export type Outcome = 'ok' | 'upstream_error' | 'local_error' | 'cancelled' | 'degraded';

/** What happened, for metrics and the request log. */
export interface Delivery {
  status: number;
  outcome: Outcome;
  failure: FailureClass | 'unavailable' | 'none';
  /** Clock time the first byte went to the app. */
  firstByteAt?: number;
  usage?: TokenUsage;
  code?: string;
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'content-length']);
/** Bytes of a stream's start and end kept to find its usage and terminator. */
const EDGE_BYTES = 4096;

function upstreamHeaders(headers: IncomingHttpHeaders, extra: OutgoingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [key, value] of Object.entries(headers)) if (value !== undefined && !HOP_BY_HOP.has(key)) out[key] = value;
  return Object.assign(out, extra);
}

function breakwaterHeaders(req: ProxyRequest, attempts: number): OutgoingHttpHeaders {
  const h: OutgoingHttpHeaders = { 'x-breakwater-upstream': req.upstream.config.name, 'x-breakwater-attempts': String(attempts) };
  if (req.model) h['x-breakwater-model'] = req.model;
  return h;
}

/** An answer the sidecar makes itself, in the upstream API's error shape. */
export function writeLocalError(
  res: ServerResponse,
  api: Parameters<typeof errorBody>[0],
  status: number,
  code: Parameters<typeof errorBody>[1],
  message: string,
  extra: OutgoingHttpHeaders = {},
  retryAfterMs?: number,
): void {
  const body = errorBody(api, code, message);
  const headers: OutgoingHttpHeaders = { ...extra, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'x-breakwater-error': code };
  if (retryAfterMs !== undefined) headers['retry-after'] = String(Math.max(1, Math.ceil(retryAfterMs / 1000)));
  res.writeHead(status, headers).end(body);
}

async function write(res: ServerResponse, chunk: Buffer | string, signal: AbortSignal): Promise<boolean> {
  if (res.write(chunk)) return true;
  return new Promise((resolve) => {
    const done = (ok: boolean) => {
      res.off('drain', onDrain);
      signal.removeEventListener('abort', onAbort);
      resolve(ok);
    };
    const onDrain = () => done(true);
    const onAbort = () => done(false);
    res.on('drain', onDrain);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

export async function respond(res: ServerResponse, req: ProxyRequest, final: Final, clock: Clock): Promise<Delivery> {
  const api = req.upstream.config.api;
  switch (final.kind) {
    case 'cancelled':
      return { status: 499, outcome: 'cancelled', failure: 'none' };
    case 'local': {
      writeLocalError(res, api, final.status, final.code, final.message, breakwaterHeaders(req, final.attempts), final.retryAfterMs);
      return { status: final.status, outcome: 'local_error', failure: final.failure, code: final.code, firstByteAt: clock.now() };
    }
    case 'answer': {
      const { answer } = final;
      const extra = breakwaterHeaders(req, final.attempts);
      if (final.stopped) extra['x-breakwater-retry-stopped'] = final.stopped;
      extra['content-length'] = answer.body.length;
      res.writeHead(answer.status, upstreamHeaders(answer.headers, extra)).end(answer.body);
      const ok = answer.failure === undefined;
      return {
        status: answer.status,
        outcome: ok ? 'ok' : 'upstream_error',
        failure: answer.failure ?? 'none',
        firstByteAt: clock.now(),
        usage: ok ? tokenUsage(answer.body.toString('utf8')) : undefined,
      };
    }
    case 'stream':
      return relayStream(res, req, final, clock);
  }
}

async function relayStream(res: ServerResponse, req: ProxyRequest, final: Extract<Final, { kind: 'stream' }>, clock: Clock): Promise<Delivery> {
  const { stream, breaker, permit } = final;
  const { timers, framing } = stream;
  const api = req.upstream.config.api;
  res.writeHead(stream.status, upstreamHeaders(stream.headers, breakwaterHeaders(req, final.attempts)));
  const firstByteAt = clock.now();
  let head = '';
  let tail = '';
  const remember = (chunk: Buffer) => {
    const text = chunk.toString('utf8');
    if (head.length < EDGE_BYTES) head += text.slice(0, EDGE_BYTES - head.length);
    tail = (tail + text).slice(-EDGE_BYTES);
  };
  let failure: FailureClass | undefined;
  let detail = '';
  try {
    for (const chunk of stream.head) {
      remember(chunk);
      if (!(await write(res, chunk, req.signal))) break;
    }
    for (;;) {
      if (req.signal.aborted) break;
      timers.arm('stream-idle', req.upstream.config.timeouts.streamIdleMs);
      let next: IteratorResult<Buffer>;
      try {
        next = await stream.rest.next();
      } catch (err) {
        if (req.signal.aborted) break;
        failure = timers.expired ? 'timeout' : 'reset';
        detail = timers.expired ? `${timers.expired} timeout after the stream started` : `stream broken: ${(err as Error).message}`;
        break;
      }
      if (next.done) {
        if (streamTerminated(api, tail) === false) {
          failure = 'reset';
          detail = 'upstream ended the stream without its terminator';
        }
        break;
      }
      remember(next.value);
      if (!(await write(res, next.value, req.signal))) break;
    }
  } finally {
    timers.dispose();
    final.onEnd();
  }
  if (req.signal.aborted) {
    timers.abort();
    breaker.release(permit);
    return { status: stream.status, outcome: 'cancelled', failure: 'none', firstByteAt };
  }
  const failOn = req.upstream.config.breaker.failOn;
  breaker.record(permit, { failure: failure !== undefined && failOn.has(failure), durationMs: stream.timeToFirstDataMs });
  if (failure) {
    timers.abort();
    const code = failure === 'timeout' ? 'upstream_timeout' : 'stream_interrupted';
    res.end(streamErrorEvent(api, framing, code, `${req.upstream.config.name}: ${detail}`));
    return { status: stream.status, outcome: 'upstream_error', failure, firstByteAt, code };
  }
  res.end();
  return { status: stream.status, outcome: 'ok', failure: 'none', firstByteAt, usage: tokenUsage(head + tail) };
}
