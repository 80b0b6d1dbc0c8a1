/**
 * A streamed response's body, taken chunk by chunk: `take()` gives the
 * next chunk there is, `null` at a clean end, nothing when none has come
 * yet, and throws once the body broke or the attempt was aborted (whatever
 * the peer does: the abort alone ends a wait); `whenReady(wake)` calls
 * `wake` when taking again may give something, from the event that brought
 * it, so a chunk goes on to the app in the call that read it. Chunks wait here while the reader is
 * busy, up to HIGH_WATER_BYTES; past it the response is paused until the
 * reader catches up, so a fast upstream and a slow app never hold more than
 * that. One listener per event for the whole body, and one callback per
 * wait: this is the per-event path of every stream.
 */
import type { IncomingMessage } from 'node:http';
import type { AbortHooks } from '../upstream/attempt-timers.js';

/** Bytes read ahead of the reader before the response is paused. */
export const HIGH_WATER_BYTES = 64 * 1024;

export class ChunkSource {
  private readonly queue: Buffer[] = [];
  private queuedBytes = 0;
  private done = false;
  private broken: Error | undefined;
  /** The reader's wake, while it waits: called as soon as there is something to take. */
  private waiter: (() => void) | undefined;

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

  /** The next chunk; null once the body ended cleanly; undefined when none has come yet. Throws once the body broke. */
  take(): Buffer | null | undefined {
    if (this.broken) throw this.broken;
    const chunk = this.queue.shift();
    if (chunk) {
      this.queuedBytes -= chunk.length;
      if (this.queuedBytes === 0 && this.response.isPaused()) this.response.resume();
      return chunk;
    }
    return this.done ? null : undefined;
  }

  /** Calls `wake` once `take()` may give something (a chunk, the end or the break): a microtask later if it may now. */
  whenReady(wake: () => void): void {
    if (this.broken || this.done || this.queue.length > 0) queueMicrotask(wake);
    else this.waiter = wake;
  }

  /** The next chunk, or null at the end, waiting for it; rejects once the body broke. */
  async next(): Promise<Buffer | null> {
    for (;;) {
      const chunk = this.take();
      if (chunk !== undefined) return chunk;
      await new Promise<void>((wake) => this.whenReady(wake));
    }
  }

  private arrived(chunk: Buffer): void {
    this.queue.push(chunk);
    this.queuedBytes += chunk.length;
    if (this.queuedBytes > HIGH_WATER_BYTES) this.response.pause();
    this.wake();
  }

  private break(err: Error): void {
    if (this.broken || this.done) return;
    this.broken = err;
    this.wake();
  }

  private wake(): void {
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.();
  }
}
