/**
 * The OpenTelemetry SDK, loaded the first time a policy turns tracing on
 * (./index.ts imports this module dynamically, so a sidecar without tracing
 * never loads it): a tracer provider with the sidecar's resource, a sampler
 * whose ratio a policy can change at once, the dropping batch processor, and
 * the OTLP exporter the environment names: HTTP/protobuf by default, gRPC or
 * HTTP/JSON on request (OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL), each imported
 * only when chosen.
 */
import type { Context, Link, SpanKind, Attributes } from '@opentelemetry/api';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { AlwaysOffSampler, AlwaysOnSampler, BasicTracerProvider, ParentBasedSampler, TraceIdRatioBasedSampler, type Sampler, type SamplingResult, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import { DroppingBatchProcessor, type SpanCounts } from './batch-processor.js';
import { requestTracer, type LiveSettings } from './otel-scope.js';
import type { ExportSettings, SamplerSettings } from './settings.js';
import type { RequestTracer } from '../proxy/trace-scope.js';

export interface Sdk {
  tracer: RequestTracer;
  /** Samples new traces at `ratio` (0 to 1), or as the environment says (undefined). */
  sample(ratio: number | undefined): void;
  /** Exports what is queued, then stops. */
  shutdown(): Promise<void>;
}

function samplerFor(s: SamplerSettings): Sampler {
  const root = s.ratio >= 1 ? new AlwaysOnSampler() : s.ratio <= 0 ? new AlwaysOffSampler() : new TraceIdRatioBasedSampler(s.ratio);
  return s.parentBased ? new ParentBasedSampler({ root }) : root;
}

/** A sampler whose rule a config can replace while spans are being made. */
class SwitchableSampler implements Sampler {
  constructor(public current: Sampler) {}
  shouldSample(context: Context, traceId: string, name: string, kind: SpanKind, attributes: Attributes, links: Link[]): SamplingResult {
    return this.current.shouldSample(context, traceId, name, kind, attributes, links);
  }
  toString(): string {
    return `Switchable{${this.current.toString()}}`;
  }
}

async function exporterFor(protocol: ExportSettings['protocol'], timeoutMillis: number): Promise<SpanExporter> {
  // Each reads its endpoint, headers and compression from the OTEL_EXPORTER_OTLP_* environment.
  if (protocol === 'grpc') return new (await import('@opentelemetry/exporter-trace-otlp-grpc')).OTLPTraceExporter({ timeoutMillis });
  if (protocol === 'http/json') return new (await import('@opentelemetry/exporter-trace-otlp-http')).OTLPTraceExporter({ timeoutMillis });
  return new (await import('@opentelemetry/exporter-trace-otlp-proto')).OTLPTraceExporter({ timeoutMillis });
}

export async function startSdk(settings: ExportSettings, live: LiveSettings, counts: SpanCounts, env: NodeJS.ProcessEnv): Promise<Sdk> {
  const exporter = await exporterFor(settings.protocol, settings.queue.exportTimeoutMs);
  const processor = new DroppingBatchProcessor(exporter, settings.queue, counts);
  const sampler = new SwitchableSampler(samplerFor(settings.sampler));
  const resource = resourceFromAttributes({
    'service.name': settings.serviceName,
    'k8s.pod.name': env.POD_NAME,
    'k8s.namespace.name': env.POD_NAMESPACE,
    ...resourceAttributes(env.OTEL_RESOURCE_ATTRIBUTES),
  });
  const provider = new BasicTracerProvider({ resource, sampler, spanProcessors: [processor] });
  return {
    tracer: requestTracer(provider.getTracer('breakwater'), live),
    sample(ratio) {
      sampler.current = samplerFor(ratio === undefined ? settings.sampler : { parentBased: true, ratio });
    },
    shutdown: () => provider.shutdown(),
  };
}

/** OTEL_RESOURCE_ATTRIBUTES (`key=value,key=value`, percent-encoded), without service.name (OTEL_SERVICE_NAME's); bad pairs skipped. */
function resourceAttributes(text: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of text?.split(',') ?? []) {
    const at = pair.indexOf('=');
    if (at <= 0) continue;
    try {
      const key = decodeURIComponent(pair.slice(0, at).trim());
      if (key !== 'service.name') out[key] = decodeURIComponent(pair.slice(at + 1).trim()).slice(0, 255);
    } catch {
      // not percent-encoded as it should be: skipped
    }
  }
  return out;
}
