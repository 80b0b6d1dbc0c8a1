/**
 * A stream from the upstream, relayed from its first content event on: the
 * events read so far first, then the rest under the stream-idle timeout (and
 * the attempt's and request's own timers, still running).
 *
 * It relays whole events only, read once (stream-events.ts): an error event
 * from the upstream, or an event that is not the API's JSON, ends the stream
 * as a failure of its class before that event reaches the app. It ends
 * `complete` with the usage it reported, or `failed` when the connection
 * breaks, a timer fires, an event fails, it ends without its API's
 * terminator, or it falls below its throughput floor (opt-in). A stream
 * whose events said the answer finished (every choice it carried has a
 * finish_reason; Anthropic's stop_reason) and that then ends without its
 * terminator is complete: the app gets the terminator it expects. Such a
 * stream gets FINISHED_IDLE_MS, not the whole idle timeout, to send the rest
 * (usage, the terminator), and is complete too if it breaks or stays silent.
 * Terminators and finishes are read from parsed events: text that mentions
 * `data: [DONE]` is text.
 */
import type { IncomingMessage } from 'node:http';
import type { ThroughputFloor } from '../../resilience/index.js';
import type { AttemptTimers } from '../upstream/attempt-timers.js';
import type { ChunkSource } from './chunk-source.js';
import type { Dialect, StreamEvent, TokenUsage } from '../dialects/dialect.js';
import type { EventReader } from './stream-events.js';
import { FIRST_CHOICE } from '../dialects/shared.js';
import { chunkOf, type StreamBody, type StreamChunk, type StreamEnd } from './stream-body.js';

/** The longest single event relayed (held whole until it completes). */
export const MAX_EVENT_CHARS = 4 * 1024 * 1024;
/** How long a stream whose answer finished may take to send the rest (usage, the terminator). */
export const FINISHED_IDLE_MS = 2000;

const LF = 10;
const CR = 13;

/** What a stream's events said so far: its usage, whether its terminator came, which choices it carried and finished. */
class StreamState {
  usage: TokenUsage | undefined;
  /** Characters of content the stream sent: its output when it reports no usage. */
  outputChars = 0;
  terminated = false;
  private choices: Set<number> | undefined;
  private finishedChoices: Set<number> | undefined;

  /** `expectedChoices`: how many choices the request asked for (OpenAI's `n`): each must finish, whether or not it showed up. */
  constructor(expectedChoices = 1) {
    if (expectedChoices > 1) this.choices = new Set(Array.from({ length: expectedChoices }, (_, i) => i));
  }

  /** Notes what an event says. */
  note(event: StreamEvent): void {
    const { read } = event;
    if (read.terminal) this.terminated = true;
    if (read.usage) this.usage = { input: read.usage.input ?? this.usage?.input ?? 0, output: read.usage.output ?? this.usage?.output ?? 0 };
    if (read.content) for (const piece of read.content) this.outputChars += piece.text.length;
    if (read.choices) for (const c of read.choices) (this.choices ??= new Set()).add(c);
    // Content after a choice's finish: the finish did not end it (a cut that follows is a cut).
    if (read.content && this.finishedChoices) for (const c of read.choices ?? FIRST_CHOICE) if (!read.finished?.includes(c)) this.finishedChoices.delete(c);
    if (read.finished) for (const c of read.finished) (this.finishedChoices ??= new Set()).add(c);
  }

  /** Whether the answer finished: some choice did, and every choice the stream carried (or the request asked for) did. */
  get finished(): boolean {
    if (!this.finishedChoices || this.finishedChoices.size === 0) return false;
    if (this.choices) for (const c of this.choices) if (!this.finishedChoices.has(c)) return false;
    return true;
  }

  /** The answer is over: its terminator came, or it finished (what may follow is usage and the terminator). */
  get over(): boolean {
    return this.terminated || this.finished;
  }
}

export interface StreamOptions {
  /** The stream-idle timeout. */
  idleMs: number;
  /** An opt-in floor under the stream's throughput, and the clock it reads. */
  floor?: { meter: ThroughputFloor; now: () => number };
  /** How many choices the request asked for (OpenAI's `n`). */
  expectedChoices?: number;
  /** Set when the sidecar asked for the usage and the app did not: each event as the app would have had it, or undefined to leave it out. */
  withoutAskedUsage?: (event: StreamEvent) => StreamEvent | undefined;
}

export class UpstreamStream implements StreamBody {
  private end: StreamEnd | undefined;
  /** What to give the app next: chunks of whole events, then perhaps how the stream ended. */
  private readonly queue: (StreamChunk | StreamEnd)[] = [];
  private readonly state: StreamState;
  /**
   * Whether the last chunk ended with an event (nothing held back, no character cut): the next one's bytes may then be
   * relayed as they are. Not known of the head's last chunk (the head's events are encoded again anyway).
   */
  private clean = false;
  /** The stream-idle timeout armed now (shorter once the answer finished). */
  private armedIdleMs = 0;

  constructor(
    private readonly response: IncomingMessage,
    private readonly chunks: ChunkSource,
    private readonly reader: EventReader,
    /** The events read before the stream was handed up (up to and including its first content event). */
    head: StreamEvent[],
    private readonly timers: AttemptTimers,
    private readonly dialect: Dialect,
    private readonly options: StreamOptions,
  ) {
    this.state = new StreamState(options.expectedChoices);
    this.accept(head);
  }

  poll(): StreamChunk | StreamEnd | undefined {
    for (;;) {
      if (this.end) return this.end;
      const next = this.queue.shift();
      if (next) return next.kind === 'chunk' ? next : this.finish(next);
      let chunk: Buffer | null | undefined;
      try {
        chunk = this.chunks.take();
      } catch (err) {
        const expired = this.timers.expired;
        if (!expired && this.timers.aborted) return this.finish({ kind: 'cancelled' }); // the app left
        if (this.state.over) {
          // The answer is whole; what did not come (usage, the terminator) is not worth a failure. Half an event is dropped.
          this.response.destroy();
          this.completed();
          continue;
        }
        const detail = expired ? `${expired} timeout after the stream started` : `stream broken: ${(err as Error).message}`;
        return this.finish({ kind: 'failed', failure: expired ? 'timeout' : 'reset', detail });
      }
      if (chunk === undefined) {
        // Nothing yet: the wait that follows is under the stream-idle timeout (shorter once the answer finished).
        const idleMs = this.state.over ? Math.min(this.options.idleMs, FINISHED_IDLE_MS) : this.options.idleMs;
        if (idleMs !== this.armedIdleMs) this.timers.armIdle((this.armedIdleMs = idleMs));
        else this.timers.touch();
        return undefined;
      }
      if (chunk === null) this.ended();
      else {
        this.timers.touch();
        this.arrived(chunk);
      }
    }
  }

  whenReady(wake: () => void): void {
    if (this.end || this.queue.length > 0) queueMicrotask(wake);
    else this.chunks.whenReady(wake);
  }

  cancel(): void {
    this.finish({ kind: 'cancelled' });
  }

  private arrived(bytes: Buffer): void {
    const wasClean = this.clean;
    const events = this.reader.push(bytes);
    const last = bytes[bytes.length - 1];
    this.clean = this.reader.held === 0 && (last === LF || last === CR);
    // A chunk of whole events (the usual case) is relayed as it came, not encoded again.
    const whole = this.accept(events, wasClean && this.clean ? bytes : undefined);
    if (!whole) return;
    const { floor } = this.options;
    if (floor?.meter.record(bytes.length, floor.now())) {
      this.queue.push({ kind: 'failed', failure: 'timeout', detail: 'the stream fell below its throughput floor' });
      return;
    }
    if (this.reader.held > MAX_EVENT_CHARS) this.queue.push({ kind: 'failed', failure: 'invalid-response', detail: `an event longer than ${MAX_EVENT_CHARS} characters` });
  }

  /** Queues whole events, up to the first that fails (then the failure); false when one failed. What follows the terminator is dropped. */
  private accept(events: StreamEvent[], bytes?: Buffer): boolean {
    if (this.state.terminated) return true;
    for (let i = 0; i < events.length; i++) {
      const event = events[i]!;
      const failed = event.read.failure;
      if (failed) {
        if (i > 0) this.relay(events.slice(0, i));
        this.queue.push({ kind: 'failed', ...failed });
        return false;
      }
      this.state.note(event);
      if (this.state.terminated) {
        this.relay(events.slice(0, i + 1), i + 1 === events.length ? bytes : undefined);
        return true;
      }
    }
    this.relay(events, bytes);
    return true;
  }

  /** Queues events for the app (as `bytes` when those are theirs), as the app would have had them without usage it did not ask for. */
  private relay(events: StreamEvent[], bytes?: Buffer): void {
    const hide = this.options.withoutAskedUsage;
    if (hide) {
      const shown: StreamEvent[] = [];
      for (const event of events) {
        const as = hide(event);
        if (as) shown.push(as);
        if (as !== event) bytes = undefined;
      }
      events = shown;
    }
    if (events.length > 0) this.queue.push(chunkOf(events, bytes));
  }

  /** How the stream ends complete: with the usage it reported, or the characters of its output to estimate from. */
  private complete(): StreamEnd {
    return this.state.usage ? { kind: 'complete', usage: this.state.usage } : { kind: 'complete', outputChars: this.state.outputChars };
  }

  /** The upstream ended the stream cleanly: was it complete? (A last event missing only its line ending counts; other leftover text is dropped.) */
  private ended(): void {
    const last = this.reader.end();
    if (last && !(last.read.failure && this.state.over) && !this.accept([last])) return;
    if (!this.dialect.endsWithTerminator || this.state.terminated) return void this.queue.push(this.complete());
    if (!this.state.finished) return void this.queue.push({ kind: 'failed', failure: 'reset', detail: 'upstream ended the stream without its terminator' });
    this.completed();
  }

  /** The answer finished: it ends complete, with the terminator the app expects if none came. */
  private completed(): void {
    const terminator = this.dialect.terminator;
    if (!this.state.terminated && terminator) this.queue.push(chunkOf([{ raw: terminator, fields: undefined, read: { terminal: true } }]));
    this.queue.push(this.complete());
  }

  private finish(end: StreamEnd): StreamEnd {
    if (this.end) return this.end;
    // A stream that broke or was given up was generating: what it sent is charged, usage or not.
    if (end.kind !== 'complete') end = { ...end, outputChars: this.state.outputChars };
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
