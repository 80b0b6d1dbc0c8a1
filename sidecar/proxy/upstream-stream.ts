/**
 * A stream from the upstream, relayed from its first content event on: the
 * chunks read so far first, then the rest under the stream-idle timeout (and
 * the attempt's and request's own timers, still running).
 *
 * It relays whole events only (event-splitter.ts), each checked by the
 * dialect: an error event from the upstream, or an event that is not the
 * API's JSON, ends the stream as a failure of its class before that event
 * reaches the app. It ends `complete` with the usage it reported, or
 * `failed` when the connection breaks, a timer fires, an event fails, or it
 * ends without its API's terminator, or falls below its throughput floor
 * (opt-in). A stream whose events said the answer finished (OpenAI's
 * finish_reason, Anthropic's stop_reason) and that then ends without its
 * terminator is complete: the app gets the terminator it expects. Such a
 * stream gets FINISHED_IDLE_MS, not the whole idle timeout, to send the rest
 * (usage, the terminator), and is complete too if it breaks or stays silent.
 */
import type { IncomingMessage } from 'node:http';
import { StringDecoder } from 'node:string_decoder';
import type { ThroughputFloor } from '../resilience/index.js';
import type { AttemptTimers } from './attempt-timers.js';
import type { ChunkSource } from './chunk-source.js';
import type { Dialect, StreamFraming, TokenUsage } from './dialects/dialect.js';
import { EventSplitter, type WholeEvent } from './event-splitter.js';
import type { StreamBody, StreamEnd } from './stream-body.js';

/** The longest single event relayed (held whole until it completes). */
export const MAX_EVENT_CHARS = 4 * 1024 * 1024;
/** How long a stream whose answer finished may take to send the rest (usage, the terminator). */
export const FINISHED_IDLE_MS = 2000;

export class UpstreamStream implements StreamBody {
  private end: StreamEnd | undefined;
  /** What to give the app next: whole events, then perhaps how the stream ended. */
  private readonly queue: (Buffer | StreamEnd)[] = [];
  private readonly decoder = new StringDecoder('utf8');
  private readonly splitter: EventSplitter;
  /**
   * What the relayed events said, read as they pass (nothing of the stream is kept for its end): the usage
   * reported (the last report of each count wins); whether the terminator came (undefined for an API without
   * one); and, once an event said the answer finished, the terminator that ends it (the stream may still
   * send usage and its own terminator).
   */
  private usage: TokenUsage | undefined;
  private terminated: boolean | undefined;
  private finishedWith: string | undefined;
  /** The stream-idle timeout armed now (shorter once the answer finished). */
  private armedIdleMs = 0;

  constructor(
    private readonly response: IncomingMessage,
    private readonly chunks: ChunkSource,
    private readonly buffered: Buffer[],
    private readonly timers: AttemptTimers,
    private readonly dialect: Dialect,
    framing: StreamFraming,
    private readonly idleMs: number,
    /** An opt-in floor under the stream's throughput, and the clock it reads. */
    private readonly floor?: { meter: ThroughputFloor; now: () => number },
  ) {
    this.splitter = new EventSplitter(framing);
    this.terminated = dialect.terminated(''); // false until the terminator comes, for an API that has one
  }

  poll(): Buffer | StreamEnd | undefined {
    for (;;) {
      if (this.end) return this.end;
      const next = this.queue.shift();
      if (next) return Buffer.isBuffer(next) ? next : this.finish(next);
      const early = this.buffered.shift();
      if (early) {
        this.accept(early);
        continue;
      }
      let chunk: Buffer | null | undefined;
      try {
        chunk = this.chunks.take();
      } catch (err) {
        const expired = this.timers.expired;
        if (!expired && this.timers.aborted) return this.finish({ kind: 'cancelled' }); // the app left
        if (this.finishedWith !== undefined) {
          // The answer is whole; what did not come (usage, the terminator) is not worth a failure. Half an event is dropped.
          this.response.destroy();
          this.splitter.flush();
          this.ended();
          continue;
        }
        const detail = expired ? `${expired} timeout after the stream started` : `stream broken: ${(err as Error).message}`;
        return this.finish({ kind: 'failed', failure: expired ? 'timeout' : 'reset', detail });
      }
      if (chunk === undefined) {
        // Nothing yet: the wait that follows is under the stream-idle timeout (shorter once the answer finished).
        const idleMs = this.finishedWith !== undefined ? Math.min(this.idleMs, FINISHED_IDLE_MS) : this.idleMs;
        if (idleMs !== this.armedIdleMs) this.timers.armIdle((this.armedIdleMs = idleMs));
        else this.timers.touch();
        return undefined;
      }
      if (chunk === null) this.ended();
      else {
        this.timers.touch();
        this.accept(chunk);
      }
    }
  }

  ready(): Promise<void> {
    return this.end || this.queue.length > 0 || this.buffered.length > 0 ? Promise.resolve() : this.chunks.ready();
  }

  cancel(): void {
    this.finish({ kind: 'cancelled' });
  }

  /** Queues the whole events a chunk completes, up to the first that fails. */
  private accept(chunk: Buffer): void {
    const heldBefore = this.splitter.held;
    let out = '';
    for (const event of this.splitter.push(this.decoder.write(chunk))) {
      const failed = this.check(event);
      if (failed) {
        this.relay(out);
        this.queue.push(failed);
        return;
      }
      out += event.raw;
    }
    // A chunk of whole events (the usual case) is relayed as it came, not encoded again.
    const whole = heldBefore === 0 && this.splitter.held === 0 && Buffer.byteLength(out) === chunk.length;
    this.relay(out, whole ? chunk : undefined);
    if (this.floor?.meter.record(Buffer.byteLength(out), this.floor.now())) {
      this.queue.push({ kind: 'failed', failure: 'timeout', detail: 'the stream fell below its throughput floor' });
      return;
    }
    if (this.splitter.held > MAX_EVENT_CHARS) this.queue.push({ kind: 'failed', failure: 'invalid-response', detail: `an event longer than ${MAX_EVENT_CHARS} characters` });
  }

  /** The upstream ended the stream cleanly: was it complete? */
  private ended(): void {
    this.relay(this.splitter.flush() + this.decoder.end());
    if (this.terminated === false) {
      if (this.finishedWith === undefined) return void this.queue.push({ kind: 'failed', failure: 'reset', detail: 'upstream ended the stream without its terminator' });
      this.relay(this.finishedWith);
    }
    this.queue.push({ kind: 'complete', usage: this.usage });
  }

  /** Why an event ends the stream, per the dialect; comments and keep-alives pass. */
  private check({ fields }: WholeEvent): StreamEnd | undefined {
    if (!fields) return undefined;
    const failed = this.dialect.eventFailure(fields.event, fields.data);
    return failed && { kind: 'failed', ...failed };
  }

  /** Queues `text` for the app (as `bytes` when they are its encoding already), noting what it says. */
  private relay(text: string, bytes?: Buffer): void {
    if (text === '') return;
    this.finishedWith ??= this.dialect.missingTerminator(text);
    this.terminated ||= this.dialect.terminated(text);
    this.usage = this.dialect.usage(text, this.usage);
    this.queue.push(bytes ?? Buffer.from(text));
  }

  private finish(end: StreamEnd): StreamEnd {
    if (this.end) return this.end;
    this.end = end;
    this.queue.length = 0;
    this.timers.dispose();
    // A stream that did not complete leaves its connection in an unknown state: close it.
    if (end.kind !== 'complete') {
      this.timers.abort();
      this.response.destroy();
    }
    return end;
  }
}
