/**
 * TraceScope and RequestTracer on OpenTelemetry's API: a scope is a span
 * and its open children. A child started while an earlier sibling of the
 * same kind is still open runs side by side with it (a hedge, a first-token
 * race) and is linked to it. The request's span ends whatever of its trace
 * is still open (a stream given up), so every span is exported. Context goes
 * in and out as W3C trace context (traceparent, tracestate); nothing is
 * registered globally, so the SDKs of other libraries see none of it.
 * Loaded only when tracing is on (./index.ts).
 */
import { defaultTextMapGetter, defaultTextMapSetter, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type Span, type Tracer } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import type { ContentCaps, RequestTracer, TraceAttributes, TraceScope } from '../proxy/trace-scope.js';

const propagator = new W3CTraceContextPropagator();

/** What a config changes in spans at once, without a restart. */
export interface LiveSettings {
  propagate: boolean;
  content: ContentCaps | undefined;
}

type Kind = 'server' | 'internal' | 'client';
const KINDS = { server: SpanKind.SERVER, internal: SpanKind.INTERNAL, client: SpanKind.CLIENT } as const;

/** The attributes that have a value. */
function defined(attributes: TraceAttributes): Attributes {
  const out: Attributes = {};
  for (const key in attributes) {
    const value = attributes[key];
    if (value !== undefined) out[key] = value as Attributes[string];
  }
  return out;
}

/** One request's trace: its tracer and settings, and its spans still open. */
class Trace {
  readonly open = new Set<Scope>();
  constructor(
    readonly tracer: Tracer,
    readonly settings: LiveSettings,
  ) {}
}

class Scope implements TraceScope {
  private readonly children = new Set<Scope>();
  private ended = false;

  constructor(
    private readonly trace: Trace,
    private readonly span: Span,
    private readonly kind: Kind,
    readonly sideBySide: boolean,
    private readonly parent: Scope | undefined,
  ) {
    trace.open.add(this);
  }

  get recording(): boolean {
    return this.span.isRecording();
  }

  get content(): ContentCaps | undefined {
    return this.trace.settings.content;
  }

  get propagates(): boolean {
    return this.trace.settings.propagate;
  }

  set(attributes: TraceAttributes): void {
    if (!this.ended && this.span.isRecording()) this.span.setAttributes(defined(attributes));
  }

  event(name: string, attributes?: TraceAttributes): void {
    if (!this.ended && this.span.isRecording()) this.span.addEvent(name, attributes && defined(attributes));
  }

  child(name: string, kind: 'internal' | 'client', attributes: TraceAttributes): TraceScope {
    let sibling: Scope | undefined;
    for (const open of this.children) if (open.kind === kind) sibling = open; // the latest still open
    const span = this.trace.tracer.startSpan(
      name,
      { kind: KINDS[kind], attributes: defined(attributes), links: sibling ? [{ context: sibling.span.spanContext() }] : undefined },
      trace.setSpan(ROOT_CONTEXT, this.span),
    );
    const scope = new Scope(this.trace, span, kind, sibling !== undefined, this);
    this.children.add(scope);
    return scope;
  }

  end(errorType?: string): void {
    if (this.ended) return;
    this.ended = true;
    this.parent?.children.delete(this);
    this.trace.open.delete(this);
    if (errorType !== undefined) {
      this.span.setAttribute('error.type', errorType);
      this.span.setStatus({ code: SpanStatusCode.ERROR });
    }
    if (!this.parent) {
      // The request is over: what is still open of its trace ends with it.
      for (const left of [...this.trace.open]) {
        left.set({ 'breakwater.ended_with_request': true });
        left.end();
      }
    }
    this.span.end();
  }

  headers(): { traceparent: string; tracestate?: string } {
    const carrier: Record<string, string> = {};
    propagator.inject(trace.setSpan(ROOT_CONTEXT, this.span), carrier, defaultTextMapSetter);
    // A tracestate the app sent over the size limit is dropped whole: no empty header then.
    if (!carrier.tracestate) delete carrier.tracestate;
    return carrier as { traceparent: string; tracestate?: string };
  }
}

/** Starts each request's trace on `tracer`: a server span, a child of the app's when its traceparent is valid. */
export function requestTracer(tracer: Tracer, settings: LiveSettings): RequestTracer {
  return {
    start(name, traceparent, tracestate, attributes) {
      const parent = traceparent === undefined ? ROOT_CONTEXT : propagator.extract(ROOT_CONTEXT, { traceparent, tracestate }, defaultTextMapGetter);
      const span = tracer.startSpan(name, { kind: SpanKind.SERVER, attributes: defined(attributes) }, parent);
      return new Scope(new Trace(tracer, settings), span, 'server', false, undefined);
    },
  };
}
