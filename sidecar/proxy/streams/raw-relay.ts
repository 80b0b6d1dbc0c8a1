/**
 * A pass-through answer relayed as bytes (a file's content, speech, a
 * streamed transcription, a batch's results): never buffered whole, never
 * split into events, so no answer size or event size limits it, only the
 * attempt's timers (stream idle between chunks, the attempt, the total).
 * It completes when the upstream's body ended as its framing said (content
 * length or last chunk); anything else is a failure, and the app's
 * connection is cut rather than ended, so its client sees a broken body,
 * never a short one presented as whole.
 */
import type { IncomingMessage } from 'node:http';
import type { AttemptTimers } from '../upstream/attempt-timers.js';
import type { ChunkSource } from './chunk-source.js';
import type { StreamBody, StreamChunk, StreamEnd } from './stream-body.js';

export class RawRelay implements StreamBody {
  private end: StreamEnd | undefined;
  private idleArmed = false;

  constructor(
    private readonly response: IncomingMessage,
    private readonly chunks: ChunkSource,
    private readonly timers: AttemptTimers,
    private readonly idleMs: number,
  ) {}

  poll(): StreamChunk | StreamEnd | undefined {
    if (this.end) return this.end;
    let chunk: Buffer | null | undefined;
    try {
      chunk = this.chunks.take();
    } catch (err) {
      const expired = this.timers.expired;
      if (!expired && this.timers.aborted) return this.finish({ kind: 'cancelled' });
      return this.finish({ kind: 'failed', failure: expired ? 'timeout' : 'reset', detail: expired ? `${expired} timeout while relaying the answer` : `answer broken: ${(err as Error).message}` });
    }
    if (chunk === null) return this.finish({ kind: 'complete' });
    if (chunk === undefined) {
      if (!this.idleArmed) this.timers.armIdle(this.idleMs);
      else this.timers.touch();
      this.idleArmed = true;
      return undefined;
    }
    this.timers.touch();
    return { kind: 'chunk', events: [], bytes: chunk };
  }

  whenReady(wake: () => void): void {
    if (this.end) queueMicrotask(wake);
    else this.chunks.whenReady(wake);
  }

  cancel(): void {
    this.finish({ kind: 'cancelled' });
  }

  private finish(end: StreamEnd): StreamEnd {
    if (this.end) return this.end;
    this.end = end;
    this.timers.dispose();
    if (end.kind !== 'complete') {
      this.timers.abort();
      this.response.destroy();
    }
    return end;
  }
}
