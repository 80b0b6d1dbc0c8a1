/**
 * A streamed response's body, pulled chunk by chunk: `next()` gives the next
 * chunk, `null` at a clean end, or rejects once the body breaks or the
 * attempt is aborted (whatever the peer does: the abort alone ends a wait).
 * Chunks wait here while the reader is busy, up to HIGH_WATER_BYTES; past it
 * the response is paused until the reader catches up, so a fast upstream and
 * a slow app never hold more than that. One listener per event for the whole
 * body, and no promise per chunk that arrives while nobody waits: this is the
 * per-event path of every stream.
 */
import type { IncomingMessage } from 'node:http';
import type { AbortHooks } from './attempt-timers.js';

/** Bytes read ahead of the reader before the response is paused. */
export const HIGH_WATER_BYTES = 64 * 1024;

export class ChunkSource {
  private readonly queue: Buffer[] = [];
  private queuedBytes = 0;
  private done = false;
  private broken: Error | undefined;
  private waiter: { resolve(chunk: Buffer | null): void; reject(err: Error): void } | undefined;

  constructor(
    private readonly response: IncomingMessage,
    attempt: AbortHooks,
  ) {
    response.on('data', (chunk: Buffer) => this.arrived(chunk));
    response.on('end', () => {
      this.done = true;
      this.wake();
    });
    response.on('error', (err) => this.break(err));
    // A response that dies mid-body (reset, abort) may end with 'close' alone.
    response.on('close', () => {
      if (!this.done) this.break(new Error('response ended before its body was complete'));
    });
    attempt.onAbort(() => this.break(new Error('attempt aborted')));
  }

  /** The next chunk; null once the body ended cleanly. */
  next(): Promise<Buffer | null> {
    if (this.broken) return Promise.reject(this.broken);
    const chunk = this.queue.shift();
    if (chunk) {
      this.queuedBytes -= chunk.length;
      if (this.queuedBytes === 0 && this.response.isPaused()) this.response.resume();
      return Promise.resolve(chunk);
    }
    if (this.done) return Promise.resolve(null);
    return new Promise((resolve, reject) => (this.waiter = { resolve, reject }));
  }

  private arrived(chunk: Buffer): void {
    const waiter = this.waiter;
    if (waiter) {
      this.waiter = undefined;
      return waiter.resolve(chunk);
    }
    this.queue.push(chunk);
    this.queuedBytes += chunk.length;
    if (this.queuedBytes > HIGH_WATER_BYTES) this.response.pause();
  }

  private break(err: Error): void {
    if (this.broken || this.done) return;
    this.broken = err;
    this.wake();
  }

  /** Hands the waiting reader what there is now: a chunk, the end or the break. */
  private wake(): void {
    const waiter = this.waiter;
    if (!waiter) return;
    this.waiter = undefined;
    this.next().then(waiter.resolve, waiter.reject);
  }
}
