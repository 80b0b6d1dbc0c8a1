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

/** `body`, calling `onEnd` exactly once, when it ends, fails or is cancelled. */
export function onStreamEnd(body: StreamBody, onEnd: (end: StreamEnd) => void): StreamBody {
  let ended = false;
  const finish = (end: StreamEnd) => {
    if (ended) return;
    ended = true;
    onEnd(end);
  };
  return {
    async read() {
      const next = await body.read();
      if (!Buffer.isBuffer(next)) finish(next);
      return next;
    },
    cancel() {
      try {
        body.cancel();
      } finally {
        finish({ kind: 'cancelled' });
      }
    },
  };
}
