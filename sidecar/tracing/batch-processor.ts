/**
 * The span processor: ended spans wait in a bounded queue and go to the
 * exporter in batches, one export at a time, every scheduleDelay or as soon
 * as a batch is full. The queue is bounded twice: in spans (maxQueueSize)
 * and in bytes (maxQueueBytes, an estimate of each span's size, the batch
 * being exported included until its export ends), so neither a setting nor
 * what an app sends can make it outgrow the sidecar. A span that finds the
 * queue full is dropped, and so is a batch whose export fails or times out:
 * each is counted (breakwater_trace_spans_dropped_total{reason}), and nothing
 * waits on the collector, so a collector that is slow or gone never slows a
 * request nor grows the sidecar. (The SDK's BatchSpanProcessor drops the same
 * way but does not say how many, and counts spans only.)
 *
 * A collector that is gone is not waited on with a full queue either: the
 * exporter retries a refused export for some 13 s, and the queue would stay
 * full of spans (up to its 16 MiB) all that time. After a failed export,
 * spans are dropped as they end (collector-down) for a backoff, 1 s doubling
 * to 30 s, and then only one batch is queued, to try the collector with,
 * until an export succeeds.
 */
import type { ReadableSpan, SpanExporter, SpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { ExportSettings } from './settings.js';
import { spanBytes } from './span-size.js';

export type DropReason = 'queue-full' | 'export-failed' | 'collector-down';

export interface SpanCounts {
  exported(spans: number): void;
  dropped(reason: DropReason, spans: number): void;
}

/** The backoff after a failed export, during which spans are dropped as they end: from 1 s, doubling to 30 s. */
const DOWN_FIRST_MS = 1000;
const DOWN_MAX_MS = 30_000;

export class DroppingBatchProcessor implements SpanProcessor {
  private queue: { span: ReadableSpan; bytes: number }[] = [];
  /** Estimated bytes of the spans queued and of the batch being exported. */
  private bytes = 0;
  private timer: NodeJS.Timeout | undefined;
  private exporting: Promise<void> | undefined;
  /** Since the last export failed, until one succeeds: when spans may queue again (one batch), and the next backoff. */
  private down: { until: number; backoffMs: number } | undefined;

  constructor(
    private readonly exporter: SpanExporter,
    private readonly settings: ExportSettings['queue'],
    private readonly counts: SpanCounts,
    private readonly now: () => number = () => performance.now(),
  ) {}

  onStart(): void {}

  onEnd(span: ReadableSpan): void {
    if (this.down && (this.now() < this.down.until || this.queue.length >= this.settings.maxBatchSize)) return this.counts.dropped('collector-down', 1);
    const bytes = spanBytes(span);
    if (this.queue.length >= this.settings.maxQueueSize || this.bytes + bytes > this.settings.maxQueueBytes) return this.counts.dropped('queue-full', 1);
    this.queue.push({ span, bytes });
    this.bytes += bytes;
    this.schedule();
  }

  /** Estimated bytes of one batch at most: a quarter of the queue's, so a batch in export leaves room for spans to queue. */
  private get batchBytes(): number {
    return this.settings.maxQueueBytes / 4;
  }

  /** An export soon: at once when a batch is full, else after the schedule delay (none while one runs: it schedules the next). */
  private schedule(): void {
    if (this.exporting) return;
    const queued = this.bytes; // nothing is in export here
    const full = this.queue.length >= this.settings.maxBatchSize || queued >= this.batchBytes;
    if (this.timer && !full) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.exportBatch(), full ? 0 : this.settings.scheduleDelayMs);
    this.timer.unref();
  }

  /** The next batch: up to maxBatchSize spans and batchBytes (one span at least). */
  private takeBatch(): { spans: ReadableSpan[]; bytes: number } {
    let n = 0;
    let bytes = 0;
    while (n < this.queue.length && n < this.settings.maxBatchSize && (n === 0 || bytes + this.queue[n]!.bytes <= this.batchBytes)) bytes += this.queue[n++]!.bytes;
    return { spans: this.queue.splice(0, n).map((q) => q.span), bytes };
  }

  private exportBatch(): Promise<void> {
    this.timer = undefined;
    if (this.exporting || this.queue.length === 0) return this.exporting ?? Promise.resolve();
    const batch = this.takeBatch();
    this.exporting = new Promise<boolean>((resolve) => {
      const timeout = setTimeout(() => resolve(false), this.settings.exportTimeoutMs);
      timeout.unref();
      try {
        this.exporter.export(batch.spans, (result) => {
          clearTimeout(timeout);
          resolve(result.code === 0); // ExportResultCode.SUCCESS
        });
      } catch {
        clearTimeout(timeout);
        resolve(false);
      }
    }).then((ok) => {
      this.bytes -= batch.bytes;
      if (ok) this.counts.exported(batch.spans.length);
      else this.counts.dropped('export-failed', batch.spans.length);
      this.exporting = undefined;
      if (ok) this.down = undefined;
      else this.collectorDown();
      if (this.queue.length > 0) this.schedule();
    });
    return this.exporting;
  }

  /** After a failed export: what is queued is dropped, and spans are for the backoff. */
  private collectorDown(): void {
    const backoffMs = this.down ? Math.min(2 * this.down.backoffMs, DOWN_MAX_MS) : DOWN_FIRST_MS;
    this.down = { until: this.now() + backoffMs, backoffMs };
    if (this.queue.length > 0) this.counts.dropped('collector-down', this.queue.length);
    for (const q of this.queue) this.bytes -= q.bytes;
    this.queue = [];
  }

  /** Exports what is queued now (each batch once: a failed one is dropped, not retried). */
  async forceFlush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    while (this.exporting || this.queue.length > 0) await (this.exporting ?? this.exportBatch());
  }

  async shutdown(): Promise<void> {
    await this.forceFlush();
    await this.exporter.shutdown();
  }
}
