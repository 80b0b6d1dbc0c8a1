/**
 * streams/ — a streamed answer on its way from the upstream to the app:
 * its bytes taken chunk by chunk under backpressure (chunk-source.ts), how
 * its events sit on the wire (stream-framing.ts) and become events, read
 * once (stream-events.ts), the relay of an upstream's stream with its
 * checks and timers (upstream-stream.ts) or of bytes as they come
 * (raw-relay.ts), and mid-stream recovery: the stream that survives a
 * break (recovering-stream.ts) and the new stream that takes it up at its
 * seam (resumed-stream.ts). This file is the body they all are.
 *
 * A streamed answer's body as the layers pass it up, polled the way tower
 * and linkerd2-proxy poll a body: `poll()` gives the next chunk, or how the
 * stream ended, when there is one now, and nothing when there is not yet;
 * `whenReady(wake)` then has `wake` called once polling again may give
 * something. Each layer answers a poll from the one below it, synchronously,
 * and hands the wake down to the bottom, so a waiting stream holds one
 * callback (no promise, no suspended function), and a chunk that arrives
 * goes through every layer to the app's socket in the call that read it. Whoever gets the outcome last (the
 * server) cancels the body in its `finally`, so an abandoned stream ends too.
 */
import type { FailureClass } from '../../../api/index.js';
import type { StreamEvent, TokenUsage } from '../dialects/dialect.js';

/** Whole events of a stream, read once; `bytes` are their text encoded when that is exactly what came (written as they are). */
export interface StreamChunk {
  kind: 'chunk';
  events: readonly StreamEvent[];
  bytes?: Buffer;
}

/** A chunk of `events`, with the bytes they came as when those are known. */
export function chunkOf(events: readonly StreamEvent[], bytes?: Buffer): StreamChunk {
  return bytes ? { kind: 'chunk', events, bytes } : { kind: 'chunk', events };
}

/** What a chunk sends the app: the bytes it came as, or its events' text (written as text: no buffer is made of it). */
export function bytesOf(chunk: StreamChunk): Buffer | string {
  if (chunk.bytes) return chunk.bytes;
  if (chunk.events.length === 1) return chunk.events[0]!.raw;
  let text = '';
  for (const event of chunk.events) text += event.raw;
  return text;
}

export type StreamEnd =
  | { kind: 'complete'; usage?: TokenUsage; outputChars?: number }
  | { kind: 'failed'; failure: FailureClass; detail: string; outputChars?: number }
  | { kind: 'cancelled'; outputChars?: number };

export interface StreamBody {
  /** The next chunk, or how the stream ended (the same end on every later call); undefined when neither is here yet. Throws only what an onStreamEnd hook threw. */
  poll(): StreamChunk | StreamEnd | undefined;
  /**
   * Calls `wake` once, when `poll()` may give something (after it gave undefined): never within this call (at once
   * is a microtask later). A body has one reader: a later wake replaces one not yet called.
   */
  whenReady(wake: () => void): void;
  /** Gives the stream up: the upstream connection is closed and the stream ends `cancelled`. Idempotent. */
  cancel(): void;
}

/** The next chunk of `body`, or how it ended, waiting as long as that takes. */
export async function nextOf(body: StreamBody): Promise<StreamChunk | StreamEnd> {
  for (;;) {
    const next = body.poll();
    if (next !== undefined) return next;
    await new Promise<void>((wake) => body.whenReady(wake));
  }
}

/** `body` with `first` read from it already: handed out first. */
export function startingWith(first: StreamChunk, body: StreamBody): StreamBody {
  let pending: StreamChunk | undefined = first;
  return {
    poll() {
      const next = pending;
      pending = undefined;
      return next ?? body.poll();
    },
    whenReady: (wake) => body.whenReady(wake),
    cancel: () => body.cancel(),
  };
}

/** A body with hooks that run once, in the order added, when it ends, fails or is cancelled. */
class HookedBody implements StreamBody {
  readonly hooks: ((end: StreamEnd) => void)[] = [];
  private ended = false;

  constructor(private readonly body: StreamBody) {}

  poll(): StreamChunk | StreamEnd | undefined {
    const next = this.body.poll();
    if (next !== undefined && next.kind !== 'chunk') this.finish(next);
    return next;
  }

  whenReady(wake: () => void): void {
    this.body.whenReady(wake);
  }

  cancel(): void {
    let end: StreamChunk | StreamEnd | undefined;
    try {
      this.body.cancel();
      end = this.body.poll(); // how the body ended: what it sent, for what the stream is charged
    } finally {
      this.finish(end !== undefined && end.kind !== 'chunk' ? end : { kind: 'cancelled' });
    }
  }

  /** Runs every hook, even if one throws (the first throw is passed on). */
  private finish(end: StreamEnd): void {
    if (this.ended) return;
    this.ended = true;
    let thrown: { err: unknown } | undefined;
    for (const hook of this.hooks) {
      try {
        hook(end);
      } catch (err) {
        thrown ??= { err };
      }
    }
    if (thrown) throw thrown.err;
  }
}

/**
 * `body`, calling `onEnd` exactly once, when it ends, fails or is cancelled. The layers that hold
 * something for a stream all hook the same body, so a stream's chunks pass one wrapper, not one per layer.
 */
export function onStreamEnd(body: StreamBody, onEnd: (end: StreamEnd) => void): StreamBody {
  const hooked = body instanceof HookedBody ? body : new HookedBody(body);
  hooked.hooks.push(onEnd);
  return hooked;
}
