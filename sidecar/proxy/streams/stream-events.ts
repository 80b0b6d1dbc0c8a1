/**
 * A stream's bytes become events here, once: decoded, split into whole
 * events (SSE up to its blank line, NDJSON a line), and each read by the
 * dialect (its content, finish, terminator, usage, or why it fails). Every
 * later step (the attempt's wait for first content, the relay's checks,
 * recovery, the app's writer) consumes these events and never parses the
 * bytes again. An unfinished event is held back (the caller bounds `held`),
 * so the app is only ever sent whole events.
 */
import { StringDecoder } from 'node:string_decoder';
import type { SseEvent } from '../../../lib/index.js';
import type { Dialect, EventReading, StreamEvent } from '../dialects/dialect.js';
import type { EventSplitter, StreamFraming } from './stream-framing.js';

const NOTHING: EventReading = {};

/**
 * Whether an event ends the wait for first content: it gives content, fails the answer, or ends it
 * (an answer may end without content: a content-filter finish, an empty or reasoning-only answer cut
 * at max_output_tokens, which are answers, not failures).
 */
export function endsFirstWait(event: StreamEvent): boolean {
  const { read } = event;
  return read.content !== undefined || read.failure !== undefined || read.terminal === true || read.finished !== undefined;
}

export class EventReader {
  private readonly decoder = new StringDecoder('utf8');
  private readonly splitter: EventSplitter;

  constructor(
    private readonly framing: StreamFraming,
    private readonly dialect: Dialect,
  ) {
    this.splitter = framing.splitter();
  }

  /** Makes one whole event, read. */
  private readonly make = (raw: string, fields: SseEvent | undefined): StreamEvent => ({ raw, fields, read: fields ? this.readSafely(fields) : NOTHING });

  /** The whole events a piece of the stream completes, in order, each read. */
  push(chunk: Buffer): StreamEvent[] {
    return this.splitter.push(this.decoder.write(chunk), this.make);
  }

  /**
   * The stream ended: its last event, when it lacks only its final line ending (some servers end so),
   * given the line ending it lacks; undefined when nothing of an event is left (other leftover text is dropped).
   */
  end(): StreamEvent | undefined {
    const rest = (this.splitter.flush() + this.decoder.end()).replace(/[\r\n]+$/, '');
    if (rest.trim() === '') return undefined;
    const fields = this.framing.fields(rest);
    if (!fields) return undefined;
    return { raw: rest + this.framing.separator, fields, read: this.readSafely(fields) };
  }

  /** Characters of an unfinished event held back. */
  get held(): number {
    return this.splitter.held;
  }

  /** The dialect's reading; an event it cannot read at all (JSON nested too deep for the stack) is malformed. */
  private readSafely(fields: SseEvent): EventReading {
    try {
      return this.dialect.readEvent(fields.event, fields.data);
    } catch {
      return { failure: { failure: 'invalid-response', detail: 'an event that could not be read' } };
    }
  }
}
