/**
 * A streamed answer's body as the layers pass it up: read chunk by chunk
 * until it ends, fails or is cancelled. Whoever gets the outcome last (the
 * server) cancels the body in its `finally`, so an abandoned stream ends too.
 */
import type { FailureClass } from '../../api/index.js';
import type { TokenUsage } from './dialects/dialect.js';

export type StreamEnd =
  | { kind: 'complete'; usage?: TokenUsage }
  | { kind: 'failed'; failure: FailureClass; detail: string }
  | { kind: 'cancelled' };

export interface StreamBody {
  /** The next chunk, or how the stream ended (the same end on every later call). Never rejects. */
  read(): Promise<Buffer | StreamEnd>;
  /** Gives the stream up: the upstream connection is closed and the stream ends `cancelled`. Idempotent. */
  cancel(): void;
}

/** `body` with `first` read from it already: handed out first. */
export function startingWith(first: Buffer, body: StreamBody): StreamBody {
  let pending: Buffer | undefined = first;
  return {
    read() {
      const next = pending;
      pending = undefined;
      return next ? Promise.resolve(next) : body.read();
    },
    cancel: () => body.cancel(),
  };
}

/** A body with hooks that run once, in the order added, when it ends, fails or is cancelled. */
class HookedBody implements StreamBody {
  readonly hooks: ((end: StreamEnd) => void)[] = [];
  private ended = false;

  constructor(private readonly body: StreamBody) {}

  read(): Promise<Buffer | StreamEnd> {
    return this.body.read().then(this.seen);
  }

  cancel(): void {
    try {
      this.body.cancel();
    } finally {
      this.finish({ kind: 'cancelled' });
    }
  }

  private readonly seen = (next: Buffer | StreamEnd): Buffer | StreamEnd => {
    if (!Buffer.isBuffer(next)) this.finish(next);
    return next;
  };

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
