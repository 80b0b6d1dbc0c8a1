/**
 * One attempt at the upstream endpoint, the innermost handler, bounded by
 * its timeouts: first byte (to the headers, and for a stream to its first
 * data event), the attempt as a whole, and the request's deadline. A plain
 * answer is read whole and classified (status, the dialect's recognisers,
 * validation of 200s); a stream is handed up once its first content event is in,
 * so one that never starts can still be retried or fall back.
 */
import type { IncomingMessage } from 'node:http';
import { TLSSocket } from 'node:tls';
import { firstHeader } from '../../../lib/index.js';
import { ContinuationSeam, RegenerationSeam, type Seam, ThroughputFloor, type AbortWatch, type Clock } from '../../resilience/index.js';
import { AttemptTimers, type AbortHooks } from '../upstream/attempt-timers.js';
import { ChunkSource } from '../streams/chunk-source.js';
import type { BodyLease } from '../inbound/body-budget.js';
import { classifyStatus, classifyTransportError } from '../dialects/classify.js';
import { parseObject } from '../dialects/shared.js';
import type { StreamEvent } from '../dialects/dialect.js';
import { localError, type AttemptRequest, type Handler, type Outcome, type ProxyRequest, type Resume } from '../handler.js';
import { RawRelay } from '../streams/raw-relay.js';
import { ResumedStream } from '../streams/resumed-stream.js';
import { framingOf } from '../streams/stream-framing.js';
import { upstreamHeaders, upstreamPath } from '../upstream/tier-request.js';
import { EventReader, endsFirstWait } from '../streams/stream-events.js';
import { nextOf, startingWith, type StreamBody, type StreamEnd } from '../streams/stream-body.js';
import { UpstreamStream } from '../streams/upstream-stream.js';
import { invalidAnswer } from '../answers/validate-answer.js';

/** timeouts.attempt, shortened by perOutputToken when the request says how many tokens it wants. */
function attemptLimitMs(req: ProxyRequest): number {
  const t = req.upstream.config.timeouts;
  if (t.perOutputTokenMs > 0 && req.maxTokens) return Math.min(t.attemptMs, t.firstByteMs + req.maxTokens * t.perOutputTokenMs);
  return t.attemptMs;
}

/**
 * Sends the request on the endpoint's keep-alive agent; resolves once the response headers are in.
 * The attempt's abort destroys it and ends the wait, whatever the peer did or did not do.
 */
function send(req: AttemptRequest, attempt: AbortHooks): Promise<IncomingMessage> {
  const { endpoint } = req;
  // The upstream's credential as it is now: a retry or a recovery after a rotation sends the new key, never the one the request began with.
  // The headers were built with it (../upstream/tier-request.ts): they are copied only when it changed since.
  const auth = req.upstream.config.auth;
  const name = auth?.value === undefined ? undefined : auth.header.toLowerCase();
  const headers = name !== undefined && req.headers[name] !== auth!.value ? { ...req.headers, [name]: auth!.value } : req.headers;
  return new Promise((resolve, reject) => {
    const outgoing = endpoint.client.request(endpoint.config.basePath + upstreamPath(req.upstream, req.appPath), { method: req.method, headers }, (response) => {
      // Only 200–599 is an answer. Node hands over a bare 101 (one without Upgrade) as a response, and a status past 599 as one too.
      const status = response.statusCode ?? 0;
      if (status >= 200 && status <= 599) return resolve(response);
      response.destroy();
      outgoing.destroy();
      reject(new Error(`upstream answered ${status}, which is no final answer`));
    });
    outgoing.on('error', reject);
    // Once the answer is whole its socket is back in the pool and destroy() is a no-op (the request is done).
    attempt.onAbort(() => {
      outgoing.destroy();
      reject(new Error('attempt aborted'));
    });
    // A new connection must be open (TCP and TLS) within timeouts.connect: a dropped SYN fails fast, as connect-failure.
    outgoing.on('socket', (socket) => {
      if (!socket.connecting || req.upstream.config.timeouts.connectMs === 0) return; // a pooled connection, open already; or no deadline (0)
      const timer = setTimeout(() => outgoing.destroy(Object.assign(new Error(`no connection within ${req.upstream.config.timeouts.connectMs} ms`), { code: 'ETIMEDOUT' })), req.upstream.config.timeouts.connectMs);
      const done = () => clearTimeout(timer);
      socket.once(socket instanceof TLSSocket ? 'secureConnect' : 'connect', done);
      socket.once('close', done);
    });
    // The sidecar asks for no upgrade: an upstream that switches protocols anyway (101) has not answered.
    outgoing.on('upgrade', (response: IncomingMessage, socket: { destroy(): void }) => {
      socket.destroy();
      reject(new Error(`upstream answered ${response.statusCode} and switched protocols`));
    });
    if (req.bodyStream) req.bodyStream.pipe(outgoing);
    else outgoing.end(req.body ?? undefined);
  });
}

/** An answer larger than the upstream's `limits` allow: the attempt fails as invalid-response. */
class TooLarge extends Error {}

/** The sidecar's body budget (limits.maxBufferedBytes) has no room for the answer: the request is refused as overloaded. */
class OverBudget extends Error {}

/**
 * Reads a plain answer whole, up to `max` bytes, taking them from the request's share of the body
 * budget: a declared length at once (before its buffer is made), otherwise chunk by chunk. The
 * attempt's abort ends the read.
 */
function readAll(response: IncomingMessage, max: number, memory: BodyLease, attempt: AbortHooks): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const fail = (err: Error) => {
      response.destroy();
      reject(err);
    };
    const tooLarge = () => fail(new TooLarge(`the answer is larger than limits.maxAnswerBytes (${max} bytes)`));
    const overBudget = () => fail(new OverBudget('the sidecar holds as many bodies as limits.maxBufferedBytes allows'));
    const declared = Number(response.headers['content-length']);
    if (declared > max) return tooLarge();
    const charged = Number.isInteger(declared) && declared > 0;
    if (charged && !memory.take(declared)) return overBudget();
    const whole = charged ? Buffer.allocUnsafe(declared) : undefined;
    const chunks: Buffer[] = [];
    let size = 0;
    response.on('data', (chunk: Buffer) => {
      if (size + chunk.length > max) return tooLarge();
      if (!charged && !memory.take(chunk.length)) return overBudget();
      if (whole) chunk.copy(whole, size); // the parser holds to the declared length
      else chunks.push(chunk);
      size += chunk.length;
    });
    response.on('end', () => resolve(whole ?? (chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks))));
    response.on('error', reject);
    // A response that dies mid-body (reset, abort) ends with 'aborted'/'close' rather than 'end'.
    response.on('close', () => {
      if (!response.complete) reject(new Error('response ended before its body was complete'));
    });
    attempt.onAbort(() => fail(new Error('attempt aborted')));
  });
}

/** The seam a recovery's new stream goes through: a continuation of the text the request carried, or a regeneration. */
function seamFor(resume: Resume): Seam {
  const text = resume.delivered.text;
  if (resume.carried !== undefined && text) return new ContinuationSeam(text.text, resume.carried, text.channel);
  return new RegenerationSeam(resume.delivered.all, resume.delivered.trailing);
}

export function attempt(clock: Clock): Handler<AttemptRequest> {
  return async (req, ctx) => {
    const started = clock.now();
    const timers = new AttemptTimers(clock, ctx.signal);
    const { timeouts, validation, limits } = req.upstream.config;
    const remaining = ctx.deadline - started;
    const attemptMs = attemptLimitMs(req);
    // Only the timer that ends first matters for each stage; it names the timeout.
    if (attemptMs < remaining) timers.arm('attempt', attemptMs);
    else timers.arm('total', remaining);
    if (timeouts.firstByteMs < Math.min(attemptMs, remaining)) timers.arm('first-byte', timeouts.firstByteMs);
    const source = { upstream: req.upstream.config.name, model: req.model };
    let handedOver = false;
    try {
      const response = await send(req, timers);
      const status = response.statusCode!;
      if (status < 300 && !ctx.dialect.composeAnswer) {
        // A pass-through answer (a file, audio, a streamed transcription) is relayed as bytes: nothing in it is read.
        timers.disarm('first-byte');
        handedOver = true;
        const body = new RawRelay(response, new ChunkSource(response, timers), timers, timeouts.streamIdleMs);
        return { kind: 'stream', ...source, status, headers: response.headers, framing: undefined, body, timeToFirstDataMs: clock.now() - started, idleMs: timeouts.streamIdleMs };
      }
      const framing = status < 300 ? framingOf(firstHeader(response.headers, 'content-type')) : undefined;
      if (!framing) {
        timers.disarm('first-byte');
        const body = await readAll(response, limits.maxAnswerBytes, ctx.memory, timers);
        const text = body.toString('utf8');
        // A server that refuses the stream_options the sidecar added (Azure before 2024-09) is asked again as the app asked, at once.
        const unasked = status === 400 && req.usageHidden && req.body && /stream_options/.test(text) ? ctx.dialect.unaskUsage?.(req.body) : undefined;
        if (unasked) {
          req.upstream.refusesUsageAsk = true;
          timers.dispose();
          return await attempt(clock)({ ...req, body: unasked, usageHidden: undefined, headers: upstreamHeaders(req.appHeaders, req.upstream, unasked) }, ctx);
        }
        let failure = classifyStatus(status, status >= 400 ? text : '', ctx.dialect.recognisers);
        // A 2xx is parsed once, for its validation and its usage.
        const json = status < 300 ? parseObject(text) : undefined;
        if (invalidAnswer(ctx.dialect, json, req.jsonMode === true, validation)) failure = 'invalid-response';
        const usage = failure === undefined && json ? ctx.dialect.answerUsage(json) : undefined;
        return { kind: 'answer', ...source, status, headers: response.headers, body, failure, usage };
      }
      // A known API's stream in another framing (NDJSON from a Chat Completions upstream) is not that API: its ends could not be read.
      if (ctx.dialect.endsWithTerminator && framingOf(ctx.dialect.streamContentType) !== framing) {
        response.destroy();
        return localError(req, 502, 'upstream_unavailable', `${source.upstream}: invalid-response: streamed ${framing.name}, which this API does not`, 'invalid-response', 1000);
      }
      const chunks = new ChunkSource(response, timers);
      // The stream's bytes become events here, once; the wait is for its first content event (or one that fails it).
      const reader = new EventReader(framing, ctx.dialect);
      const head: StreamEvent[] = [];
      // The first event that ends the wait (each event is looked at once: a head of many keep-alives costs no more).
      let decisive: StreamEvent | undefined;
      for (let held = 0; !decisive; ) {
        const chunk = await chunks.next();
        if (chunk === null) break;
        for (const event of reader.push(chunk)) {
          head.push(event);
          if (!decisive && endsFirstWait(event)) decisive = event;
        }
        held += chunk.length;
        if (held > limits.maxStreamHeadBytes && !decisive) {
          response.destroy();
          throw new TooLarge(`the stream sent more than limits.maxStreamHeadBytes (${limits.maxStreamHeadBytes} bytes) before its first content event`);
        }
      }
      timers.disarm('first-byte');
      if (!decisive) {
        // It ended before any content or end: read what is left (a last event without its line ending), else it was cut.
        const last = reader.end();
        if (last) head.push(last);
        if (last && endsFirstWait(last)) decisive = last;
        else if (!last) return localError(req, 502, 'upstream_unavailable', `${source.upstream}: reset: stream ended before its first content event`, 'reset', 1000);
      }
      // One that fails (an error event, garbage) fails the attempt before the app sees anything.
      const failure = decisive?.read.failure;
      if (failure) {
        response.destroy();
        return localError(req, 502, 'upstream_unavailable', `${source.upstream}: ${failure.failure}: ${failure.detail}`, failure.failure, 1000);
      }
      handedOver = true; // from here the stream disposes of the timers
      const { throughputFloor } = req.upstream.config;
      const floor = throughputFloor.bytesPerSecond > 0 ? { meter: new ThroughputFloor(throughputFloor.bytesPerSecond, throughputFloor.windowMs, clock.now()), now: () => clock.now() } : undefined;
      const upstream = new UpstreamStream(response, chunks, reader, head, timers, ctx.dialect, { idleMs: timeouts.streamIdleMs, floor, expectedChoices: req.choices, withoutAskedUsage: req.usageHidden ? ctx.dialect.withoutAskedUsage : undefined });
      // A recovery's new stream succeeds only once it gives content past what the app has (../streams/resumed-stream.ts).
      const stream = req.resume ? new ResumedStream(upstream, seamFor(req.resume), ctx.dialect, framing) : upstream;
      // A recovery's new stream that fails before its first new content (a cut, a divergence) fails the attempt before the app sees anything.
      const first = await nextOf(stream);
      if (first.kind !== 'chunk') {
        if (first.kind === 'failed') return localError(req, 502, 'upstream_unavailable', `${source.upstream}: ${first.failure}: ${first.detail}`, first.failure, 1000);
        if (first.kind === 'cancelled') return { kind: 'cancelled' };
      }
      const body = first.kind === 'chunk' ? startingWith(first, stream) : ended(first);
      const strategy = req.resume ? (req.resume.carried === undefined ? 'regenerate' : 'continuation') : undefined;
      return { kind: 'stream', ...source, status, headers: response.headers, framing, body, timeToFirstDataMs: clock.now() - started, idleMs: timeouts.streamIdleMs, strategy };
    } catch (err) {
      return failed(req, timers, ctx.signal, err);
    } finally {
      if (!handedOver) timers.dispose();
    }
  };
}

/** A body that has ended already (a recovery's new stream that completed right where the app's answer stood). */
function ended(end: StreamEnd): StreamBody {
  return { poll: () => end, whenReady: (wake) => queueMicrotask(wake), cancel: () => {} };
}

/** The outcome of an attempt that threw: a timeout, the app leaving, or a transport failure. */
function failed(req: ProxyRequest, timers: AttemptTimers, appSignal: AbortWatch, err: unknown): Outcome {
  const name = req.upstream.config.name;
  if (err instanceof TooLarge) return localError(req, 502, 'upstream_unavailable', `${name}: invalid-response: ${err.message}`, 'invalid-response');
  if (err instanceof OverBudget) return localError(req, 503, 'overloaded', `${name}: ${err.message}; retry shortly`, 'unavailable', 1000);
  if (timers.expired) return localError(req, 504, 'upstream_timeout', `${name}: ${timers.expired} timeout`, 'timeout');
  if (appSignal.aborted) return { kind: 'cancelled' };
  const failure = classifyTransportError(err);
  return localError(req, 502, 'upstream_unavailable', `${name}: ${failure}: ${(err as Error).message}`, failure, 1000);
}
