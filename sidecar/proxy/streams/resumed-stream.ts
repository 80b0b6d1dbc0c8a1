/**
 * The new stream of a mid-stream recovery, passed through its seam
 * (resilience/stream-verifier.ts) inside the attempt, so that the attempt
 * succeeds only once there is content past what the app already has: until
 * then a failure of the new stream is a failure of the attempt (retried, or
 * the chain moves on), and nothing of it reaches the app. What repeats the
 * delivered content is left out (an event the seam enters in the middle is
 * rewritten to carry only its new part); a new stream's opening events are
 * left out too (the app has the first stream's); events after the seam are
 * held until content past it is certain, then passed on. A new stream that
 * is not the answer the app has fails as `diverged`.
 */
import type { Seam } from '../../resilience/index.js';
import { parseSseEvent } from '../../../lib/index.js';
import type { Dialect, StreamEvent } from '../dialects/dialect.js';
import type { StreamFraming } from './stream-framing.js';
import { chunkOf, type StreamBody, type StreamChunk, type StreamEnd } from './stream-body.js';

export class ResumedStream implements StreamBody {
  /** Events the seam let through, waiting until content past what the app has is certain. */
  private held: StreamEvent[] = [];
  private readonly queue: (StreamChunk | StreamEnd)[] = [];
  private end: StreamEnd | undefined;

  constructor(
    private readonly body: StreamBody,
    private readonly seam: Seam,
    private readonly dialect: Dialect,
    private readonly framing: StreamFraming,
  ) {}

  poll(): StreamChunk | StreamEnd | undefined {
    for (;;) {
      if (this.end) return this.end;
      const queued = this.queue.shift();
      if (queued) return queued.kind === 'chunk' ? queued : this.finish(queued);
      const next = this.body.poll();
      if (next === undefined) return undefined;
      if (next.kind === 'chunk') {
        // Once past the seam with nothing held, the stream passes as it is.
        if (this.seam.decided && this.held.length === 0) return next;
        this.pass(next.events);
        continue;
      }
      if (next.kind === 'complete' && !this.seam.decided) {
        const why = this.seam.complete();
        if (why) return this.finish({ kind: 'failed', failure: 'diverged', detail: why });
      }
      if (next.kind === 'complete') this.release();
      this.queue.push(next);
    }
  }

  whenReady(wake: () => void): void {
    if (this.end || this.queue.length > 0) queueMicrotask(wake);
    else this.body.whenReady(wake);
  }

  cancel(): void {
    this.finish({ kind: 'cancelled' });
  }

  /** Sorts a chunk's events: left out, held, or (once past the seam) queued for the app. */
  private pass(events: readonly StreamEvent[]): void {
    for (const event of events) {
      const passed = this.through(event);
      if (passed === 'diverged') return;
      if (passed) this.held.push(passed);
    }
    if (this.seam.decided) this.release();
  }

  /** The event as it goes on (perhaps rewritten), undefined when it is left out, or 'diverged' (queued as the stream's end). */
  private through(event: StreamEvent): StreamEvent | undefined | 'diverged' {
    const { content, opens, unverifiable, structure } = event.read;
    if (!content) {
      if (structure !== undefined) {
        const verdict = this.seam.structure(structure);
        if (verdict === 'diverged') return this.diverged('a new attempt\'s content blocks differ from those already sent');
        if (verdict === 'drop') return undefined;
      }
      if (this.seam.decided) return event;
      if (unverifiable) return this.diverged('a new attempt sent content that cannot be verified');
      // Before the seam, the new stream repeats what the app has; after it, its opening events open what the app has open already.
      if (!this.seam.caughtUp || (opens && this.seam.strategy === 'continuation')) return undefined;
      return event;
    }
    if (unverifiable && !this.seam.decided) return this.diverged('a new attempt sent content that cannot be verified');
    let rewritten = false;
    let kept = false;
    const keep = content.map((piece) => {
      const verdict = this.seam.push(piece);
      if (verdict.kind === 'diverged') return verdict;
      if (verdict.kind === 'drop') return (rewritten = true), undefined;
      kept = true;
      if (verdict.text !== piece.text) rewritten = true;
      return verdict.text;
    });
    const divergence = keep.find((k) => typeof k === 'object');
    if (divergence) return this.diverged(divergence.why);
    if (!kept) return undefined;
    if (!rewritten) return event;
    const texts = keep as (string | undefined)[];
    let raw: string;
    try {
      raw = this.dialect.withContent(event.fields!.event, event.fields!.data, texts);
    } catch {
      return this.diverged('a new attempt sent an event that could not be rewritten');
    }
    const pieces = content.flatMap((piece, i) => (texts[i] === undefined ? [] : [{ channel: piece.channel, text: texts[i]! }]));
    return { raw, fields: this.framing.fields(raw), read: { ...event.read, content: pieces } };
  }

  private diverged(why: string): 'diverged' {
    this.held = [];
    this.queue.push({ kind: 'failed', failure: 'diverged', detail: why });
    return 'diverged';
  }

  private release(): void {
    if (this.held.length === 0) return;
    this.queue.push(chunkOf(this.held));
    this.held = [];
  }

  private finish(end: StreamEnd): StreamEnd {
    if (this.end) return this.end;
    this.queue.length = 0;
    this.held = [];
    this.body.cancel(); // a no-op for an end that came from it; for its own (diverged), the upstream stream goes unread
    // Given up: the upstream stream's own end says what it sent (what the attempt is charged).
    const inner = end.kind === 'cancelled' ? this.body.poll() : undefined;
    this.end = inner !== undefined && inner.kind === 'cancelled' ? inner : end;
    return this.end;
  }
}
