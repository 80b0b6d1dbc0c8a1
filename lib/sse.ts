/**
 * An incremental reader of server-sent events (the WHATWG event-stream
 * format): text goes in as it arrives, complete events come out. Only the
 * unfinished last line is kept between calls, so a long stream is read in
 * linear time. Lines end with LF or CRLF; comment lines (keep-alives) yield
 * nothing.
 */

export interface SseEvent {
  /** The `event:` field, "message" when absent. */
  event: string;
  /** The `data:` lines, joined with newlines. */
  data: string;
}

/** The fields of one event as its lines arrive. */
class EventFields {
  private event = '';
  private data: string[] = [];

  /** Takes one line (without its line ending) that is neither blank nor a comment. */
  field(line: string): void {
    const colon = line.indexOf(':');
    const name = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(line.charCodeAt(colon + 1) === 32 ? colon + 2 : colon + 1);
    if (name === 'data') this.data.push(value);
    else if (name === 'event') this.event = value;
  }

  /** The event its lines made (undefined when no data came: comments, keep-alives), and a fresh start. */
  take(): SseEvent | undefined {
    const event = this.data.length > 0 ? { event: this.event || 'message', data: this.data.join('\n') } : undefined;
    this.event = '';
    this.data = [];
    return event;
  }
}

/**
 * The value of `block`, a whole event, when it is the usual one: one `data:` line and the blank line
 * that ends it; undefined for any other shape. After the first line only the blank line is left
 * ("\n" or "\r\n"): any other line would take at least three characters with the blank line.
 */
function singleDataLine(block: string): string | undefined {
  if (!block.startsWith('data:')) return undefined;
  const nl = block.indexOf('\n');
  const rest = block.length - nl - 1;
  if (nl < 0 || rest > 2) return undefined;
  const cr = block.charCodeAt(nl - 1) === 13 /* \r */ ? 1 : 0;
  return block.slice(block.charCodeAt(5) === 32 /* space */ ? 6 : 5, nl - cr);
}

/** The fields of one whole event, `block` being its lines; undefined for one without data (a comment, a keep-alive). */
export function parseSseEvent(block: string): SseEvent | undefined {
  // The shape nearly every event of a model's stream has, read without splitting it into lines.
  const data = singleDataLine(block);
  if (data !== undefined) return { event: 'message', data };
  const fields = new EventFields();
  for (const raw of block.split('\n')) {
    const line = raw.charCodeAt(raw.length - 1) === 13 /* \r */ ? raw.slice(0, -1) : raw;
    if (line !== '' && line.charCodeAt(0) !== 58 /* : */) fields.field(line);
  }
  return fields.take();
}

export class SseReader {
  private partial = '';
  private readonly fields = new EventFields();

  /** Feeds the next piece of the stream; returns the events it completed. */
  push(text: string): SseEvent[] {
    const events: SseEvent[] = [];
    let start = 0;
    const all = this.partial + text;
    // The held-back part has no newline: search only what is new.
    for (let end = all.indexOf('\n', this.partial.length); end >= 0; end = all.indexOf('\n', start)) {
      const line = all.charCodeAt(end - 1) === 13 /* \r */ ? all.slice(start, end - 1) : all.slice(start, end);
      start = end + 1;
      if (line === '') {
        const event = this.fields.take();
        if (event) events.push(event);
      } else if (line.charCodeAt(0) !== 58 /* : */) {
        this.fields.field(line);
      }
    }
    this.partial = all.slice(start);
    return events;
  }

  /** Characters of an unfinished line held back (callers bound it). */
  get pending(): number {
    return this.partial.length;
  }
}
