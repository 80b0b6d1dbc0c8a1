/**
 * One attempt at the upstream, bounded by its timeouts: first byte (to the
 * headers, and for a stream to its first data event), the attempt as a whole,
 * and the request's total deadline. A plain answer is read whole; a stream is
 * handed back as soon as its first data event arrives, with its timers still
 * running, so the caller can relay it or, if it never starts, retry it.
 */
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { FailureClass } from '../../api/index.js';
import type { Clock } from '../resilience/clock.js';
import { hasDataEvent, streamFraming, type StreamFraming } from './api-dialects.js';
import { apiOfPath } from './answer-shapes.js';
import { classifyStatus, classifyTransportError } from './classify.js';
import { invalidAnswer } from './validate-answer.js';
import type { ProxyRequest } from './proxy-request.js';
import type { Endpoint } from './upstream-state.js';

export type TimeoutKind = 'first-byte' | 'attempt' | 'total' | 'stream-idle';

/** The timers of one attempt, all aborting the same controller. */
export class AttemptTimers {
  readonly controller = new AbortController();
  expired: TimeoutKind | undefined;
  private readonly handles = new Map<TimeoutKind, unknown>();

  constructor(
    private readonly clock: Clock,
    appSignal: AbortSignal,
  ) {
    if (appSignal.aborted) this.controller.abort();
    else appSignal.addEventListener('abort', this.onAppAbort, { once: true });
    this.appSignal = appSignal;
  }

  private readonly appSignal: AbortSignal;
  private readonly onAppAbort = () => this.controller.abort();

  arm(kind: TimeoutKind, ms: number): void {
    this.disarm(kind);
    this.handles.set(kind, this.clock.setTimer(() => this.expire(kind), Math.max(0, ms)));
  }

  disarm(kind: TimeoutKind): void {
    const handle = this.handles.get(kind);
    if (handle !== undefined) this.clock.clearTimer(handle);
    this.handles.delete(kind);
  }

  /** Stops every timer and forgets the app's signal. */
  dispose(): void {
    for (const handle of this.handles.values()) this.clock.clearTimer(handle);
    this.handles.clear();
    this.appSignal.removeEventListener('abort', this.onAppAbort);
  }

  /** Aborts the attempt (e.g. the relay found the stream broken). */
  abort(): void {
    this.controller.abort();
  }

  private expire(kind: TimeoutKind): void {
    this.expired ??= kind;
    this.controller.abort();
  }
}

export type AttemptResult =
  | {
      kind: 'answer';
      status: number;
      headers: IncomingHttpHeaders;
      body: Buffer;
      /** Undefined for a success. */
      failure: FailureClass | undefined;
    }
  | {
      kind: 'stream';
      status: number;
      headers: IncomingHttpHeaders;
      framing: StreamFraming;
      /** Chunks read up to and including the first data event. */
      head: Buffer[];
      rest: AsyncIterator<Buffer>;
      timers: AttemptTimers;
      timeToFirstDataMs: number;
    }
  | { kind: 'error'; failure: FailureClass; detail: string }
  | { kind: 'cancelled' };

/** timeouts.attempt, shortened by perOutputToken when the request says how many tokens it wants. */
function attemptLimitMs(req: ProxyRequest): number {
  const t = req.upstream.config.timeouts;
  if (t.perOutputTokenMs > 0 && req.maxTokens) return Math.min(t.attemptMs, t.firstByteMs + req.maxTokens * t.perOutputTokenMs);
  return t.attemptMs;
}

export async function attempt(req: ProxyRequest, endpoint: Endpoint, clock: Clock): Promise<AttemptResult> {
  const started = clock.now();
  const timers = new AttemptTimers(clock, req.signal);
  const remaining = req.deadline - started;
  const attemptMs = attemptLimitMs(req);
  // Only the timer that ends first matters for each stage; it names the timeout.
  if (attemptMs < remaining) timers.arm('attempt', attemptMs);
  else timers.arm('total', remaining);
  const firstByteMs = req.upstream.config.timeouts.firstByteMs;
  if (firstByteMs < Math.min(attemptMs, remaining)) timers.arm('first-byte', firstByteMs);
  let handedOver = false;
  try {
    const response = await send(req, endpoint, timers.controller.signal);
    const framing = response.statusCode! < 300 ? streamFraming(headerValue(response.headers['content-type'])) : undefined;
    if (!framing) {
      timers.disarm('first-byte');
      const body = await readAll(response);
      const status = response.statusCode!;
      let failure = classifyStatus(status, status >= 400 ? body.toString('utf8') : '');
      if (status < 300 && invalidAnswer(apiOfPath(req.appPath), body.toString('utf8'), req.jsonMode === true, req.upstream.config.validation)) failure = 'invalid-response';
      return { kind: 'answer', status, headers: response.headers, body, failure };
    }
    const iterator = response[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    const head: Buffer[] = [];
    let text = '';
    for (;;) {
      const r = await iterator.next();
      if (r.done) break;
      head.push(r.value);
      text += r.value.toString('utf8');
      if (hasDataEvent(framing, text)) break;
    }
    timers.disarm('first-byte');
    if (head.length === 0) return { kind: 'error', failure: 'reset', detail: 'stream ended before its first data event' };
    handedOver = true;
    return {
      kind: 'stream',
      status: response.statusCode!,
      headers: response.headers,
      framing,
      head,
      rest: iterator,
      timers,
      timeToFirstDataMs: clock.now() - started,
    };
  } catch (err) {
    if (timers.expired) return { kind: 'error', failure: 'timeout', detail: `${timers.expired} timeout` };
    if (req.signal.aborted) return { kind: 'cancelled' };
    const failure = classifyTransportError(err);
    return { kind: 'error', failure, detail: (err as Error).message };
  } finally {
    if (!handedOver) timers.dispose();
  }
}

/** Sends the request on the upstream's keep-alive agent; resolves once the response headers are in. */
function send(req: ProxyRequest, endpoint: Endpoint, signal: AbortSignal): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const outgoing = endpoint.client.request(endpoint.config.basePath + req.appPath, { method: req.method, headers: req.headers, signal }, resolve);
    outgoing.on('error', reject);
    if (req.bodyStream) req.bodyStream.pipe(outgoing);
    else outgoing.end(req.body ?? undefined);
  });
}

function readAll(response: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    response.on('data', (chunk: Buffer) => chunks.push(chunk));
    response.on('end', () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)));
    response.on('error', reject);
    // A response that dies mid-body (reset, abort) ends with 'aborted'/'close' rather than 'end'.
    response.on('close', () => {
      if (!response.complete) reject(new Error('response ended before its body was complete'));
    });
  });
}

export function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
