/**
 * What the request path sees of tracing: a TraceScope is one span of the
 * request's trace (the request, a tier, an attempt, a wait), with what a
 * layer may do to it. The layers reach it through RequestContext.trace,
 * which is undefined while tracing is off: then nothing here is called and
 * no span, context or header is made. The OpenTelemetry side that
 * implements it is loaded only when tracing is on (../tracing/index.ts).
 */

export type TraceValue = string | number | boolean | readonly string[];
export type TraceAttributes = Readonly<Record<string, TraceValue | undefined>>;

/** What a policy lets spans hold of prompts and answers (tracing.content); absent: nothing. */
export interface ContentCaps {
  /** Characters of a recorded prompt or answer at most, as recorded (its messages' JSON). */
  readonly maxChars: number;
}

export interface TraceScope {
  /** Whether the span is recorded (sampled): attributes that cost work to compute are skipped when not. */
  readonly recording: boolean;
  /** Set when the span was started while a sibling of the same kind was still open (a hedge, a race): it is linked to that one. */
  readonly sideBySide: boolean;
  /** What the policy lets spans hold of prompts and answers; undefined (the default): nothing. */
  readonly content: ContentCaps | undefined;
  /** Whether the upstream is sent this trace's context (tracing.propagate). */
  readonly propagates: boolean;
  /** Sets attributes on the span (each string already bounded by the caller). */
  set(attributes: TraceAttributes): void;
  /** A timed event on the span. */
  event(name: string, attributes?: TraceAttributes): void;
  /** A span inside this one; one started while an earlier sibling of the same kind is open is linked to it. */
  child(name: string, kind: 'internal' | 'client', attributes: TraceAttributes): TraceScope;
  /** Ends the span (once; later calls do nothing); `errorType` marks it failed, as error.type. */
  end(errorType?: string): void;
  /** The W3C trace-context headers that name this span as the parent: traceparent, and tracestate when the trace has one. */
  headers(): { traceparent: string; tracestate?: string };
}

/** Starts a request's trace, continuing the app's traceparent (and tracestate) when it sent one. */
export interface RequestTracer {
  start(name: string, traceparent: string | undefined, tracestate: string | undefined, attributes: TraceAttributes): TraceScope;
}

/** The tracer in force: undefined while tracing is off (the request path checks this one field). */
export interface TracingSwitch {
  readonly tracer: RequestTracer | undefined;
}
