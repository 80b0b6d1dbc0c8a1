/**
 * Splits a stream's text into whole events as they complete: for SSE up to
 * and including the blank line that ends each event, for NDJSON each line.
 * An unfinished event is held back (the caller bounds `held`), so the app is
 * only ever sent whole events, and a stream that breaks or is judged mid-way
 * never leaves half an event behind.
 */
import type { StreamFraming } from './dialects/dialect.js';

const SSE_EVENT_END = /\r?\n\r?\n/g;

export class EventSplitter {
  private pending = '';

  constructor(private readonly framing: StreamFraming) {}

  /** Feeds the next piece of text; returns the events it completed, raw, in order. */
  push(text: string): string[] {
    const all = this.pending + text;
    const events: string[] = [];
    let start = 0;
    if (this.framing === 'ndjson') {
      for (let end = all.indexOf('\n', this.pending.length); end >= 0; end = all.indexOf('\n', start)) {
        events.push(all.slice(start, end + 1));
        start = end + 1;
      }
    } else {
      // Only the new text (and the 3 characters before it, which may begin a separator) can hold a new boundary.
      SSE_EVENT_END.lastIndex = Math.max(0, this.pending.length - 3);
      for (let m = SSE_EVENT_END.exec(all); m; m = SSE_EVENT_END.exec(all)) {
        events.push(all.slice(start, m.index + m[0].length));
        start = m.index + m[0].length;
      }
    }
    this.pending = all.slice(start);
    return events;
  }

  /** Characters of an unfinished event held back. */
  get held(): number {
    return this.pending.length;
  }

  /** Gives up what is held back (at the end of the stream). */
  flush(): string {
    const rest = this.pending;
    this.pending = '';
    return rest;
  }
}
