/**
 * How a layer keeps hold of something (a slot, a permit, a count) for as
 * long as the call it wraps: `holding()` runs the release exactly once, at
 * once for an answer, a local error or a throw, and for a stream when its
 * body ends, fails or is cancelled.
 */
import type { Outcome, StreamOutcome } from './handler.js';
import { onStreamEnd, type StreamEnd } from './streams/stream-body.js';

/** How a call that a layer held something for came to an end. */
export type CallEnd =
  | { kind: 'threw' }
  | { kind: 'returned'; outcome: Exclude<Outcome, StreamOutcome> }
  | { kind: 'stream-ended'; outcome: StreamOutcome; end: StreamEnd };

/** Runs `call` and hands `release` how it ended, exactly once (see the module's comment). */
export function holding(call: () => Promise<Outcome>, release: (end: CallEnd) => void): Promise<Outcome> {
  let pending: Promise<Outcome>;
  try {
    pending = call();
  } catch (err) {
    release({ kind: 'threw' });
    return Promise.reject(err);
  }
  // One reaction, not an async function: this runs once per layer per request.
  return pending.then(
    (outcome) => {
      if (outcome.kind !== 'stream') {
        release({ kind: 'returned', outcome });
        return outcome;
      }
      return { ...outcome, body: onStreamEnd(outcome.body, (end) => release({ kind: 'stream-ended', outcome, end })) };
    },
    (err: unknown) => {
      release({ kind: 'threw' });
      throw err;
    },
  );
}
