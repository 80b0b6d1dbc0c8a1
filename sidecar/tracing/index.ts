/**
 * tracing/ — OpenTelemetry traces of the pod's LLM calls, off unless the
 * policy turns them on (spec.tracing). While off, the request path checks one
 * field (Tracing.tracer, undefined) and the SDK is not even loaded.
 *
 * The spans hang on the request path's own seams: the server starts the
 * request's span (request-span.ts) and puts it in RequestContext.trace
 * (../proxy/trace-scope.ts); the traceTier and traceAttempt layers
 * (../proxy/layers/trace-*.ts) make a span per tier and per attempt
 * (tier-span.ts, attempt-span.ts, with stream-tap.ts reading a stream's
 * events as they pass); the resilience layers put their decisions on the span
 * they are in (retries, waits, hedges, fallbacks, recoveries). genai.ts names
 * the attributes (the GenAI conventions and breakwater.*), content.ts keeps
 * prompts and answers only when the policy opts in, and capped.
 *
 * This file turns tracing on and off as configs are applied; the SDK
 * (otel-sdk.ts, otel-scope.ts), loaded the first time it is on, exports
 * through a bounded queue that drops rather than waits (batch-processor.ts),
 * where settings.ts's OTEL_* environment says. Nothing here can stop the
 * sidecar: a failure to load or export is logged or counted, and tracing stays off.
 */
import type { Logger } from 'pino';
import type { TracingConfig } from '../config/index.js';
import type { RequestTracer, TracingSwitch } from '../proxy/trace-scope.js';
import type { SpanCounts } from './batch-processor.js';
import type { LiveSettings } from './otel-scope.js';
import type { Sdk } from './otel-sdk.js';
import { endpointOf, exportSettings, type ExportSettings } from './settings.js';

/** How long a drain waits for the last spans to be exported. */
const SHUTDOWN_MS = 2000;

export class Tracing implements TracingSwitch {
  /** The tracer in force; undefined while tracing is off (or still loading). */
  tracer: RequestTracer | undefined;
  private readonly settings: ExportSettings;
  private readonly live: LiveSettings = { propagate: true, content: undefined };
  private sdk: Promise<Sdk | undefined> | undefined;
  private wanted: TracingConfig | undefined;

  constructor(
    private readonly log: Logger,
    private readonly counts: SpanCounts,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {
    this.settings = exportSettings(env);
  }

  /** Puts a config's tracing in force: on, off, its sampling and content caps, at once (the SDK loads once, in the background). */
  apply(config: TracingConfig): void {
    this.wanted = config;
    this.live.propagate = config.propagate;
    this.live.content = config.content;
    if (!config.enabled || this.settings.disabled) {
      if (config.enabled) this.log.warn('tracing is on in the policy but OTEL_SDK_DISABLED (or OTEL_TRACES_EXPORTER=none) keeps it off');
      this.tracer = undefined;
      return;
    }
    this.sdk ??= this.load();
    void this.sdk.then((sdk) => {
      // A later config may have turned it off while the SDK loaded.
      if (!sdk || this.wanted !== config) return;
      sdk.sample(config.sampleRatio);
      this.tracer = sdk.tracer;
    });
  }

  private async load(): Promise<Sdk | undefined> {
    try {
      const { startSdk } = await import('./otel-sdk.js');
      const sdk = await startSdk(this.settings, this.live, this.counts, this.env);
      if (/\$\(/.test(this.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? this.env.OTEL_EXPORTER_OTLP_ENDPOINT ?? '')) {
        this.log.warn('the OTLP endpoint holds a $(VAR) that was not expanded (a variable its pod does not define before it); spans will not be exported');
      }
      this.log.info({ endpoint: endpointOf(this.env, this.settings.protocol), protocol: this.settings.protocol, maxQueueSize: this.settings.queue.maxQueueSize, maxQueueBytes: this.settings.queue.maxQueueBytes }, 'tracing on: exporting spans over OTLP');
      return sdk;
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'tracing could not start; it stays off');
      return undefined;
    }
  }

  /** Stops tracing and exports what is queued (at a drain), for at most SHUTDOWN_MS. */
  async shutdown(): Promise<void> {
    this.tracer = undefined;
    let timer: NodeJS.Timeout | undefined;
    const timeUp = new Promise<void>((resolve) => (timer = setTimeout(resolve, SHUTDOWN_MS)));
    // The collector may be away: a drain waits at most SHUTDOWN_MS for the last spans, which are dropped (and counted) after that.
    await Promise.race([this.sdk?.then((sdk) => sdk?.shutdown()).catch(() => {}), timeUp]);
    clearTimeout(timer);
  }
}
