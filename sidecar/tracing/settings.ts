/**
 * Where spans go and how they are batched and sampled, from the standard
 * OpenTelemetry environment variables (the platform's: the chart's `tracing`
 * values, or the pod's own, which the injector hands the sidecar). The
 * exporter reads its endpoint, headers and timeout from them itself
 * (OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT, _HEADERS, _TIMEOUT, _COMPRESSION).
 * A value that does not parse is taken as unset: a typo never stops the sidecar;
 * a number past its maximum is taken as the maximum (the app's containers can
 * set these, and the sidecar's memory is not theirs to size).
 */

export type Protocol = 'http/protobuf' | 'http/json' | 'grpc';

export interface SamplerSettings {
  /** Follow the sampled flag of the app's traceparent (parentbased_*). */
  parentBased: boolean;
  /** Share of new traces recorded, 0 to 1. */
  ratio: number;
}

export interface ExportSettings {
  /** OTEL_SDK_DISABLED=true, or OTEL_TRACES_EXPORTER=none: tracing stays off whatever the policy says. */
  disabled: boolean;
  protocol: Protocol;
  serviceName: string;
  sampler: SamplerSettings;
  /** The batch span processor's queue (OTEL_BSP_*, clamped): spans past maxQueueSize, or past maxQueueBytes (estimated), are dropped, and counted. */
  queue: { maxQueueSize: number; maxQueueBytes: number; maxBatchSize: number; scheduleDelayMs: number; exportTimeoutMs: number };
}

/** The most the queue holds, whatever OTEL_BSP_MAX_QUEUE_SIZE says: spans, and estimated bytes (span-size.ts), the batch in export included. */
export const QUEUE_LIMITS = { spans: 16_384, bytes: 16 * 1024 * 1024, batch: 2048, delayMs: 60_000, timeoutMs: 60_000 } as const;

/** A whole number from `text`, at least `min` (else `fallback`) and at most `max` (a larger one is taken as `max`). */
function int(text: string | undefined, fallback: number, min: number, max: number): number {
  const n = text === undefined || text.trim() === '' ? NaN : Number(text);
  return Number.isInteger(n) && n >= min ? Math.min(n, max) : fallback;
}

/** OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG (the SDK's default, parentbased_always_on, when unset or unknown). */
function samplerOf(name: string | undefined, arg: string | undefined): SamplerSettings {
  const ratio = arg !== undefined && arg.trim() !== '' && Number(arg) >= 0 && Number(arg) <= 1 ? Number(arg) : 1;
  switch (name?.trim()) {
    case 'always_on':
      return { parentBased: false, ratio: 1 };
    case 'always_off':
      return { parentBased: false, ratio: 0 };
    case 'traceidratio':
      return { parentBased: false, ratio };
    case 'parentbased_always_off':
      return { parentBased: true, ratio: 0 };
    case 'parentbased_traceidratio':
      return { parentBased: true, ratio };
    default:
      return { parentBased: true, ratio: 1 };
  }
}

function protocolOf(env: NodeJS.ProcessEnv): Protocol {
  const given = (env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ?? env.OTEL_EXPORTER_OTLP_PROTOCOL)?.trim();
  return given === 'grpc' || given === 'http/json' ? given : 'http/protobuf';
}

export function exportSettings(env: NodeJS.ProcessEnv = process.env): ExportSettings {
  const maxQueueSize = int(env.OTEL_BSP_MAX_QUEUE_SIZE, 2048, 1, QUEUE_LIMITS.spans);
  return {
    disabled: env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true' || env.OTEL_TRACES_EXPORTER?.trim() === 'none',
    protocol: protocolOf(env),
    serviceName: env.OTEL_SERVICE_NAME?.trim() || 'breakwater-sidecar',
    sampler: samplerOf(env.OTEL_TRACES_SAMPLER, env.OTEL_TRACES_SAMPLER_ARG),
    queue: {
      maxQueueSize,
      maxQueueBytes: QUEUE_LIMITS.bytes,
      maxBatchSize: Math.min(int(env.OTEL_BSP_MAX_EXPORT_BATCH_SIZE, 512, 1, QUEUE_LIMITS.batch), maxQueueSize),
      scheduleDelayMs: int(env.OTEL_BSP_SCHEDULE_DELAY, 5000, 0, QUEUE_LIMITS.delayMs),
      exportTimeoutMs: int(env.OTEL_BSP_EXPORT_TIMEOUT, 30_000, 1, QUEUE_LIMITS.timeoutMs),
    },
  };
}

/** Where the traces go, for the log line (the origin only: a URL's user part or query could hold a secret). */
export function endpointOf(env: NodeJS.ProcessEnv, protocol: Protocol): string {
  const given = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? env.OTEL_EXPORTER_OTLP_ENDPOINT;
  try {
    if (given) return new URL(given).origin;
  } catch {
    return 'an endpoint that is no URL';
  }
  return protocol === 'grpc' ? 'http://localhost:4317' : 'http://localhost:4318';
}
