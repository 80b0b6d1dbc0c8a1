/**
 * How many requests a self-hosted model server says wait in its own queue,
 * read from its Prometheus metrics (healthCheck.metricsPath). Each server
 * names the gauge its own way: vLLM `vllm:num_requests_waiting` (one series
 * per engine and model), SGLang `sglang:num_queue_reqs` (one per rank), TGI
 * `tgi_queue_size`, llama.cpp's server (with --metrics)
 * `llamacpp:requests_deferred`. The waiting count is the sum of every sample
 * of these gauges; only these exact names count.
 *
 * The text exposition format is read a line at a time as it arrives
 * (QueueGaugeReader), so what is held is one line, not the answer: vLLM's
 * metrics run to hundreds of KiB of histograms. The probe sends no
 * credentials, reads at most MAX_METRICS_BYTES and judges only the complete
 * lines among them, and answers undefined (unknown) for a non-2xx, an answer
 * with no such gauge, garbage, or a read cut short by its signal.
 */
import { StringDecoder } from 'node:string_decoder';
import type { UpstreamClient } from './upstream-client.js';

/** The queue gauges of the model servers, each as the server's own code names it. */
export const QUEUE_GAUGES: ReadonlySet<string> = new Set([
  'vllm:num_requests_waiting', // vllm/v1/metrics/loggers.py
  'sglang:num_queue_reqs', // python/sglang/srt/metrics/collector.py
  'tgi_queue_size', // text-generation-inference's router
  'llamacpp:requests_deferred', // tools/server, --metrics
]);

/** Most of an answer the probe reads; past it, the complete lines read are judged and the rest is never read. */
export const MAX_METRICS_BYTES = 1024 * 1024;
/** A longer line is not judged (a queue gauge's line is short: a name, a few labels, a number). */
export const MAX_LINE_CHARS = 16 * 1024;

/** A float as the exposition format writes a count (3, 3.0, 1e+00); NaN, ±Inf and hex are not counts. */
const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
/** An optional timestamp after the value: integer milliseconds (text format) or float seconds (OpenMetrics). */
const TIMESTAMP = /^-?\d+(?:\.\d+)?$/;

const isBlank = (c: number) => c === 0x20 || c === 0x09;
/** [A-Za-z0-9_:], the characters of a metric name. */
const isNameChar = (c: number) => (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) || c === 0x5f || c === 0x3a;

/**
 * The value of one line if it is a sample of a queue gauge (`name[{labels}] value [timestamp]`), else undefined:
 * a comment, another metric, or a line that does not parse. The labels are skipped, quotes and escapes respected.
 */
function queueSample(line: string): number | undefined {
  let i = 0;
  while (i < line.length && isBlank(line.charCodeAt(i))) i++;
  const start = i;
  while (i < line.length && isNameChar(line.charCodeAt(i))) i++;
  if (i === start || !QUEUE_GAUGES.has(line.slice(start, i))) return undefined;
  if (i < line.length && !isBlank(line.charCodeAt(i)) && line[i] !== '{') return undefined; // the name runs on (tgi_queue_size-1)
  while (i < line.length && isBlank(line.charCodeAt(i))) i++;
  if (line[i] === '{') {
    let quoted = false;
    for (i++; i < line.length; i++) {
      const c = line[i];
      if (quoted && c === '\\') i++;
      else if (c === '"') quoted = !quoted;
      else if (!quoted && c === '}') break;
    }
    if (i >= line.length) return undefined; // the label set never closed
    i++;
  }
  const [value, timestamp, ...rest] = line.slice(i).trim().split(/[ \t]+/);
  if (value === undefined || !DECIMAL.test(value) || rest.length > 0 || (timestamp !== undefined && !TIMESTAMP.test(timestamp))) return undefined;
  const n = Number(value);
  return Number.isFinite(n) && n >= 0 ? n : undefined;
}

/**
 * Reads the queue gauges of a Prometheus text exposition fed in pieces of any size: a line is judged once it
 * is complete (its newline read, or the end), CRLF or LF; a line longer than MAX_LINE_CHARS is not judged,
 * wherever the pieces split it, so what is held is at most one such line. Work is linear in the text.
 */
export class QueueGaugeReader {
  private tail = '';
  /** The line in progress grew past MAX_LINE_CHARS: the rest of it is dropped. */
  private overlong = false;
  private total = 0;
  private samples = 0;

  /** Requests waiting, summed over every sample of a queue gauge read so far; undefined while none was. */
  get waiting(): number | undefined {
    return this.samples > 0 && Number.isFinite(this.total) ? this.total : undefined;
  }

  push(text: string): void {
    let from = 0;
    for (let nl = text.indexOf('\n'); nl >= 0; nl = text.indexOf('\n', from)) {
      this.line(text.slice(from, nl));
      from = nl + 1;
    }
    this.partial(text.slice(from));
  }

  /** The text ended: its last line, if it has no newline, is complete all the same. */
  end(): void {
    this.line('');
  }

  /** Ends the line in progress with `rest`. */
  private line(rest: string): void {
    const overlong = this.overlong || this.tail.length + rest.length > MAX_LINE_CHARS;
    const line = overlong ? '' : this.tail + rest;
    this.tail = '';
    this.overlong = false;
    if (overlong) return;
    const n = queueSample(line.endsWith('\r') ? line.slice(0, -1) : line);
    if (n === undefined) return;
    this.total += n;
    this.samples++;
  }

  private partial(text: string): void {
    if (this.overlong) return;
    if (this.tail.length + text.length > MAX_LINE_CHARS) {
      this.tail = '';
      this.overlong = true;
    } else {
      this.tail += text;
    }
  }
}

/** The requests waiting that a whole exposition says, or undefined when it has no queue gauge (pure: the parse alone). */
export function parseServerQueue(text: string): number | undefined {
  const reader = new QueueGaugeReader();
  reader.push(text);
  reader.end();
  return reader.waiting;
}

const is2xx = (status: number) => status >= 200 && status <= 299;

/** One read of `path` from the endpoint's origin: the requests waiting in the server's queue, or undefined (unknown). */
export function serverQueueProbe(client: UpstreamClient, path: string, maxBytes = MAX_METRICS_BYTES): (signal: AbortSignal) => Promise<number | undefined> {
  return (signal) =>
    new Promise((resolve) => {
      const request = client.request(path, { method: 'GET', headers: { accept: 'text/plain' }, signal }, (res) => {
        if (!is2xx(res.statusCode ?? 0)) {
          resolve(undefined);
          return void res.destroy();
        }
        const reader = new QueueGaugeReader();
        const decoder = new StringDecoder('utf8');
        let bytes = 0;
        res.on('data', (chunk: Buffer) => {
          const room = maxBytes - bytes;
          bytes += chunk.length;
          if (chunk.length <= room) return reader.push(decoder.write(chunk));
          reader.push(decoder.write(chunk.subarray(0, room))); // the line it cuts is never complete: not judged
          resolve(reader.waiting);
          res.destroy();
        });
        res.on('end', () => {
          reader.push(decoder.end());
          reader.end();
          resolve(reader.waiting);
        });
        res.on('close', () => resolve(undefined)); // destroyed or aborted before the end (a no-op once resolved)
      });
      request.on('error', () => resolve(undefined));
      request.end();
    });
}
