/**
 * How a stream's events sit on the wire, one object per framing: server-sent
 * events (blocks that end with a blank line; OpenAI, Anthropic and their kin)
 * and NDJSON (a JSON value a line; Ollama's own API). A stream's framing comes
 * from its content type; everything that splits, reads or writes events asks
 * it instead of branching on a name.
 */
import { parseSseEvent, PendingText, SseSplitter, type SseEvent } from '../../../lib/index.js';

/** Splits a stream's text into whole events, holding back the unfinished one. */
export interface EventSplitter {
  /** The whole events `text` completes, each as `make` makes it of its text and fields (undefined for a comment or keep-alive). */
  push<T>(text: string, make: (raw: string, fields: SseEvent | undefined) => T): T[];
  /** Characters of an unfinished event held back (callers bound it). */
  readonly held: number;
  /** Gives up what is held back (at the end of the stream). */
  flush(): string;
}

/** An event a dialect writes: its data, and its name where the framing names events. */
export interface WrittenEvent {
  event?: string;
  data: string;
}

export interface StreamFraming {
  readonly name: 'sse' | 'ndjson';
  splitter(): EventSplitter;
  /** The fields of one whole event, given without or with its separator; undefined when it carries no data. */
  fields(raw: string): SseEvent | undefined;
  /** What ends an event. */
  readonly separator: string;
  /** `event` as this framing writes it. */
  write(event: WrittenEvent): string;
  /** A line the app's parser skips, saying `text`; undefined for a framing without comments. */
  comment(text: string): string | undefined;
  /**
   * The event that ends a stream the sidecar breaks off: the dialect's `event`, or, for a framing
   * whose only streaming API is Ollama's, that API's error line whatever the dialect.
   */
  error(event: WrittenEvent, code: string, message: string): string;
}

export const sse: StreamFraming = {
  name: 'sse',
  splitter: () => new SseSplitter(),
  fields: (raw) => parseSseEvent(raw),
  separator: '\n\n',
  write: ({ event, data }) => `${event === undefined ? '' : `event: ${event}\n`}data: ${data}\n\n`,
  comment: (text) => `: ${text.replace(/[\r\n]/g, ' ')}\n\n`,
  error: (event) => sse.write(event),
};

/** Splits NDJSON into lines, each with its line ending. */
class LineSplitter implements EventSplitter {
  private readonly pending = new PendingText();

  push<T>(text: string, make: (raw: string, fields: SseEvent | undefined) => T): T[] {
    const lines: T[] = [];
    let start = 0;
    for (let end = text.indexOf('\n'); end >= 0; end = text.indexOf('\n', start)) {
      const raw = this.pending.take(text.slice(start, end + 1));
      lines.push(make(raw, ndjson.fields(raw)));
      start = end + 1;
    }
    this.pending.add(start === 0 ? text : text.slice(start));
    return lines;
  }

  get held(): number {
    return this.pending.length;
  }

  flush(): string {
    return this.pending.take();
  }
}

/** The error line that ends an NDJSON stream (Ollama's shape). */
const ndjsonError = (code: string, message: string) => JSON.stringify({ error: `${code}: ${message}`, done: true }) + '\n';

export const ndjson: StreamFraming = {
  name: 'ndjson',
  splitter: () => new LineSplitter(),
  fields: (raw) => {
    const data = raw.trim();
    return data === '' ? undefined : { event: 'message', data };
  },
  separator: '\n',
  write: ({ data }) => `${data}\n`,
  comment: () => undefined,
  error: (_event, code, message) => ndjsonError(code, message),
};

/** The framing of a stream, from its content type; undefined for a plain answer. */
export function framingOf(contentType: string | undefined): StreamFraming | undefined {
  if (!contentType) return undefined;
  if (contentType.includes('text/event-stream')) return sse;
  if (contentType.includes('ndjson')) return ndjson;
  return undefined;
}
