/**
 * For testing one layer alone: an upstream's live objects compiled from a
 * policy, on a ManualClock; a request and its context; inner handlers that
 * answer, fail, throw or stream as told; and a stream body the test drives.
 */
import { loadPolicyText } from '../../sidecar/config/policy-file.js';
import type { RuntimeConfig } from '../../sidecar/config/runtime-config.js';
import { createMetrics } from '../../sidecar/metrics.js';
import type { Dialect } from '../../sidecar/proxy/dialects/dialect.js';
import { openai } from '../../sidecar/proxy/dialects/openai.js';
import type { AnswerOutcome, AttemptRequest, BreakerRefusal, Handler, LocalOutcome, Outcome, ProxyRequest, RequestContext } from '../../sidecar/proxy/handler.js';
import { RequestReport } from '../../sidecar/proxy/request-report.js';
import { chunkOf, nextOf, type StreamBody, type StreamChunk, type StreamEnd } from '../../sidecar/proxy/streams/stream-body.js';
import { EventReader } from '../../sidecar/proxy/streams/stream-events.js';
import { UpstreamState } from '../../sidecar/proxy/upstream/upstream-state.js';
import { BodyBudget } from '../../sidecar/proxy/inbound/body-budget.js';
import { ManualClock } from '../../sidecar/resilience/clock.js';
import { AbortFlag } from '../../sidecar/resilience/abort-flag.js';
import { sse, type StreamFraming } from '../../sidecar/proxy/streams/stream-framing.js';

export const metrics = createMetrics();

export function compile(spec: object): RuntimeConfig {
  const loaded = loadPolicyText(JSON.stringify(spec), 'layer test');
  if (!loaded.ok) throw new Error(loaded.error);
  return loaded.config;
}

/** Live objects for upstream `name` of `spec` (default: one upstream "primary" with the given settings). */
export function upstreamOf(clock: ManualClock, settings: object = {}, spec?: object, name = 'primary'): UpstreamState {
  const config = compile(spec ?? { upstreams: [{ name: 'primary', url: 'http://127.0.0.1:9', ...settings }] });
  return new UpstreamState(config.upstreams.get(name)!, name, config.priorities.classes, clock, metrics, () => {});
}

/** A request to `upstream`, as the breaker layer would hand it in (to its first endpoint): it goes to any layer. */
export function requestTo(upstream: UpstreamState, extra: Partial<AttemptRequest> = {}): AttemptRequest {
  const body = Buffer.from(JSON.stringify({ model: 'm', messages: [] }));
  return { upstream, method: 'POST', appPath: '/v1/chat/completions', appHeaders: {}, headers: {}, stream: false, body, model: 'm', priority: 1, endpoint: upstream.endpoints[0]!, ...extra };
}

export function contextAt(clock: ManualClock, extra: Partial<RequestContext> = {}): RequestContext & { abort(): void } {
  const app = new AbortFlag(); // as the server gives each request
  return { dialect: openai, primary: 'primary', startedAt: clock.now(), deadline: clock.now() + 60_000, signal: app, memory: new BodyBudget(() => Infinity).lease(), report: new RequestReport(), abort: () => app.abort(), ...extra };
}

export function answer(status = 200, failure?: AnswerOutcome['failure'], body = '{"choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":3,"completion_tokens":4}}'): AnswerOutcome {
  return { kind: 'answer', upstream: 'primary', status, headers: { 'content-type': 'application/json' }, body: Buffer.from(body), failure };
}

export function localFailure(failure: LocalOutcome['failure'] = 'reset', code: LocalOutcome['code'] = 'upstream_unavailable'): LocalOutcome {
  return { kind: 'local', upstream: 'primary', status: 502, code, message: 'failed', failure };
}

/** What the breaker layer answers while no breaker admits an attempt. */
export function breakerRefused(): BreakerRefusal {
  return { ...localFailure('unavailable', 'circuit_open'), code: 'circuit_open', refusedBy: 'breaker' };
}

/** An inner handler giving each outcome in turn (the last one from then on) and counting its calls (requests of kind `R`). */
export function innerGiving<R extends ProxyRequest = ProxyRequest>(...outcomes: (Outcome | (() => Outcome) | Error)[]): Handler<R> & { calls: R[] } {
  const calls: R[] = [];
  const handler = async (req: R) => {
    calls.push(req);
    const next = outcomes[Math.min(calls.length, outcomes.length) - 1]!;
    if (next instanceof Error) throw next;
    return typeof next === 'function' ? next() : next;
  };
  return Object.assign(handler, { calls });
}

/**
 * A stream body the test drives: `push` (text read into events as `dialect`'s, OpenAI's by default; a chunk for each push that
 * completes an event), `end` and `fail` feed it; `cancels` counts cancel() calls.
 */
export class DrivenStream implements StreamBody {
  cancels = 0;
  private readonly reader: EventReader;
  private queue: (StreamChunk | StreamEnd)[] = [];
  private waiting: (() => void) | undefined;
  private over: StreamEnd | undefined;

  constructor(dialect: Dialect = openai, framing: StreamFraming = sse) {
    this.reader = new EventReader(framing, dialect);
  }

  push(text: string): void {
    const events = this.reader.push(Buffer.from(text));
    if (events.length > 0) this.deliver(chunkOf(events));
  }

  end(usage?: { input: number; output: number }): void {
    this.deliver({ kind: 'complete', usage });
  }

  fail(failure: 'reset' | 'timeout' = 'reset'): void {
    this.deliver({ kind: 'failed', failure, detail: 'test' });
  }

  poll(): StreamChunk | StreamEnd | undefined {
    return this.queue.shift() ?? this.over;
  }

  whenReady(wake: () => void): void {
    if (this.queue.length > 0 || this.over) queueMicrotask(wake);
    else this.waiting = wake;
  }

  cancel(): void {
    this.cancels++;
    this.deliver({ kind: 'cancelled' });
  }

  private deliver(next: StreamChunk | StreamEnd): void {
    if (this.over) return;
    if (next.kind === 'chunk') this.queue.push(next);
    else this.over = next;
    const waiter = this.waiting;
    this.waiting = undefined;
    waiter?.();
  }
}

export function streamOf(body: StreamBody): Outcome {
  return { kind: 'stream', upstream: 'primary', status: 200, headers: { 'content-type': 'text/event-stream' }, framing: sse, body, timeToFirstDataMs: 5, idleMs: 30_000 };
}

/** Reads a stream outcome to its end. */
export async function drain(outcome: Outcome): Promise<StreamEnd> {
  if (outcome.kind !== 'stream') throw new Error(`expected a stream, got ${outcome.kind}`);
  for (;;) {
    const next = await nextOf(outcome.body);
    if (next.kind !== 'chunk') return next;
  }
}

export { nextOf };

/** Lets pending promise callbacks run. */
export const settle = () => new Promise((r) => setImmediate(r));

export { ManualClock };
