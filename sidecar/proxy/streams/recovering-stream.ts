/**
 * A stream that survives a break after its first content: it relays the
 * stream, noting the content the app has been sent; when the stream fails
 * (cut, stall, error event, malformed event), it asks `again` for a new run
 * of the chain for the same request, which ends in a stream that starts
 * exactly where the app's answer stands (the attempt's seam made sure of it:
 * resumed-stream.ts), or in none. The app reads one uninterrupted answer,
 * with an SSE comment before the terminator that says it was recovered (SDKs
 * skip comments). When no new stream is had, the stream ends with the
 * original failure. A stream that carries what recovery cannot vouch for
 * (several choices, signed thinking, an API it does not know) is never
 * recovered, nor is one that sent more than it keeps a copy of.
 */
import type { FailureClass } from '../../../api/index.js';
import { DeliveredContent } from '../../resilience/index.js';
import type { StreamFraming } from './stream-framing.js';
import type { StreamEvent } from '../dialects/dialect.js';
import { chunkOf, type StreamBody, type StreamChunk, type StreamEnd } from './stream-body.js';

export type RecoveryResult = 'recovered' | 'diverged' | 'failed' | 'refused';
/** How a new stream took up the answer; 'none' when no new stream was had. */
export type RecoveryStrategy = 'continuation' | 'regenerate' | 'none';

/** What a new run of the chain gave: a stream that takes up the answer, or the failure it ended with. */
export type NextStream = { kind: 'stream'; body: StreamBody; upstream: string; strategy: RecoveryStrategy } | { kind: 'failed'; failure: FailureClass | 'unavailable' | 'budget-exhausted' | undefined };

export interface RecoveryDeps {
  framing: StreamFraming;
  /** For an API that numbers its events: an event renumbered (undefined when it has no number). */
  renumber?: (event: StreamEvent, sequence: number) => string | undefined;
  maxRecoveries: number;
  /** A new run of the chain for the request, given what the app has and the break (undefined: no time left, or the app left). */
  again(delivered: DeliveredContent, broke: { upstream: string; failure: FailureClass }): Promise<NextStream | undefined>;
  /** Each recovery tried, with its result. */
  onRecovery(result: RecoveryResult, strategy: RecoveryStrategy): void;
}

type Failed = Extract<StreamEnd, { kind: 'failed' }>;

export class RecoveringStream implements StreamBody {
  private current: StreamBody;
  /** The upstream the current stream comes from. */
  private upstream: string;
  private readonly delivered = new DeliveredContent();
  private vouched = true;
  private recoveries = 0;
  /** Once recovered: how, and the failure it recovered from (said in a comment before the terminator). */
  private recovered: { strategy: RecoveryStrategy; from: Failed; said: boolean } | undefined;
  private end: StreamEnd | undefined;
  /** The number of the last event the app had, for an API that numbers them: a recovered stream's events follow it. */
  private sequence: number | undefined;
  /** While a new stream is being had: resolved once it is (or none could be). */
  private recovering: Promise<void> | undefined;

  constructor(
    first: StreamBody,
    upstream: string,
    private readonly deps: RecoveryDeps,
  ) {
    this.current = first;
    this.upstream = upstream;
  }

  poll(): StreamChunk | StreamEnd | undefined {
    for (;;) {
      if (this.end) return this.end;
      if (this.recovering) return undefined;
      const next = this.current.poll();
      if (next === undefined) return undefined;
      if (next.kind === 'chunk') return this.vouched || this.recovered ? this.noted(next) : next;
      if (next.kind === 'failed') {
        this.recovering = this.recover(next).then(
          (end) => this.over(end),
          () => this.over(next),
        );
        continue;
      }
      if (next.kind === 'complete' && this.recovered) this.deps.onRecovery('recovered', this.recovered.strategy);
      return this.finish(next);
    }
  }

  whenReady(wake: () => void): void {
    if (this.end) queueMicrotask(wake);
    else if (this.recovering) void this.recovering.then(wake);
    else this.current.whenReady(wake);
  }

  cancel(): void {
    this.finish({ kind: 'cancelled' });
  }

  /** Notes the content a chunk sends the app; in a recovered SSE stream, says so before the terminator. */
  private noted(chunk: StreamChunk): StreamChunk {
    if (this.recovered && this.deps.renumber) chunk = this.renumbered(chunk, this.deps.renumber);
    let comment: number | undefined;
    for (let i = 0; i < chunk.events.length; i++) {
      const { read } = chunk.events[i]!;
      if (read.sequence !== undefined) this.sequence = read.sequence;
      if (read.unverifiable) this.vouched = false;
      if (read.content && this.vouched) for (const piece of read.content) this.delivered.add(piece);
      else if (read.structure !== undefined && this.vouched) this.delivered.mark(read.structure);
      if (read.terminal && this.recovered && !this.recovered.said) comment = i;
    }
    if (this.delivered.overflowed) this.vouched = false;
    const note = comment === undefined ? undefined : this.deps.framing.comment(`breakwater recovered this stream after: ${this.recovered!.from.detail}`);
    if (note === undefined) return chunk;
    this.recovered!.said = true;
    const events: StreamEvent[] = [...chunk.events];
    events.splice(comment!, 0, { raw: note, fields: undefined, read: {} });
    return chunkOf(events);
  }

  /** A recovered stream's chunk, its events numbered on from the last the app had. */
  private renumbered(chunk: StreamChunk, renumber: NonNullable<RecoveryDeps['renumber']>): StreamChunk {
    const events = chunk.events.map((event) => {
      if (event.read.sequence === undefined || this.sequence === undefined || !event.fields) return event;
      const sequence = this.sequence + 1;
      const raw = renumber(event, sequence);
      this.sequence = sequence;
      return raw === undefined ? event : { ...event, raw, read: { ...event.read, sequence } };
    });
    return chunkOf(events);
  }

  /** Tries a new stream after `failure`; the end to give when none can follow. */
  private async recover(failure: Failed): Promise<StreamEnd | undefined> {
    if (this.recovered) this.deps.onRecovery('failed', this.recovered.strategy); // the recovered stream broke in its turn
    if (!this.vouched) {
      this.deps.onRecovery('refused', 'none');
      return failure;
    }
    if (this.recoveries >= this.deps.maxRecoveries || this.delivered.empty) return failure;
    this.recoveries++;
    this.current.cancel();
    const next = await this.deps.again(this.delivered, { upstream: this.upstream, failure: failure.failure });
    if (this.end) {
      if (next?.kind === 'stream') next.body.cancel(); // cancelled while it was being had: it has no reader
      return this.end;
    }
    if (next?.kind !== 'stream') {
      this.deps.onRecovery(next?.failure === 'diverged' ? 'diverged' : 'failed', 'none');
      const diverged = next?.failure === 'diverged' ? '; a new attempt diverged from the content already sent' : '';
      return { ...failure, detail: `${failure.detail}${diverged}` };
    }
    this.current = next.body;
    this.upstream = next.upstream;
    this.recovered = { strategy: next.strategy, from: failure, said: false };
    return undefined;
  }

  /** A recovery is over: the stream goes on with the new stream, or ends with `end`. */
  private over(end: StreamEnd | undefined): void {
    this.recovering = undefined;
    if (end) this.finish(end);
  }

  private finish(end: StreamEnd): StreamEnd {
    if (this.end) return this.end;
    this.end = end;
    this.current.cancel();
    return end;
  }
}
