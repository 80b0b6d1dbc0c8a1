/**
 * A stream from the upstream, relayed from its first data event on: the
 * chunks read so far first, then the rest under the stream-idle timeout (and
 * the attempt's and request's own timers, still running). It ends
 * `complete` with the usage it reported, or `failed` when the connection
 * breaks, a timer fires, or it ends without its API's terminator. A stream
 * that ends cleanly without its terminator after its last event said the
 * answer finished is complete: the app gets the terminator it expects.
 */
import type { IncomingMessage } from 'node:http';
import type { Dialect } from './dialects/dialect.js';
import type { AttemptTimers } from './attempt-timers.js';
import type { StreamBody, StreamEnd } from './stream-body.js';

/** Bytes of a stream's start and end kept to find its usage and terminator. */
const EDGE_CHARS = 4096;

export class UpstreamStream implements StreamBody {
  private end: StreamEnd | undefined;
  /** The end to give after the terminator the sidecar added. */
  private completeAfterTerminator: StreamEnd | undefined;
  private head = '';
  private tail = '';

  constructor(
    private readonly response: IncomingMessage,
    private readonly chunks: AsyncIterator<Buffer>,
    private readonly buffered: Buffer[],
    private readonly timers: AttemptTimers,
    private readonly dialect: Dialect,
    private readonly idleMs: number,
  ) {}

  async read(): Promise<Buffer | StreamEnd> {
    if (this.end) return this.end;
    if (this.completeAfterTerminator) return this.finish(this.completeAfterTerminator);
    const early = this.buffered.shift();
    if (early) return this.remember(early);
    this.timers.arm('stream-idle', this.idleMs);
    let next: IteratorResult<Buffer>;
    try {
      next = await this.timers.settled(this.chunks.next());
    } catch (err) {
      if (this.end) return this.end; // cancelled while waiting
      const expired = this.timers.expired;
      if (!expired && this.timers.controller.signal.aborted) return this.finish({ kind: 'cancelled' }); // the app left
      const detail = expired ? `${expired} timeout after the stream started` : `stream broken: ${(err as Error).message}`;
      return this.finish({ kind: 'failed', failure: expired ? 'timeout' : 'reset', detail });
    }
    if (this.end) return this.end;
    if (!next.done) return this.remember(next.value);
    const usage = this.dialect.usage(this.head + this.tail);
    if (this.dialect.terminated(this.tail) === false) {
      const terminator = this.dialect.missingTerminator(this.tail);
      if (terminator === undefined) return this.finish({ kind: 'failed', failure: 'reset', detail: 'upstream ended the stream without its terminator' });
      this.completeAfterTerminator = { kind: 'complete', usage };
      return Buffer.from(terminator);
    }
    return this.finish({ kind: 'complete', usage });
  }

  cancel(): void {
    this.finish({ kind: 'cancelled' });
  }

  private remember(chunk: Buffer): Buffer {
    const text = chunk.toString('utf8');
    if (this.head.length < EDGE_CHARS) this.head += text.slice(0, EDGE_CHARS - this.head.length);
    this.tail = (this.tail + text).slice(-EDGE_CHARS);
    return chunk;
  }

  private finish(end: StreamEnd): StreamEnd {
    if (this.end) return this.end;
    this.end = end;
    this.timers.dispose();
    // A stream that did not complete leaves its connection in an unknown state: close it.
    if (end.kind !== 'complete') {
      this.timers.abort();
      this.response.destroy();
    }
    return end;
  }
}
