/**
 * Splits a stream's text into whole events as they complete: for SSE up to
 * and including the blank line that ends each event, for NDJSON each line.
 * An unfinished event is held back (the caller bounds `held`), so the app is
 * only ever sent whole events, and a stream that breaks or is judged mid-way
 * never leaves half an event behind. Each event comes with its fields, read
 * once here for whoever checks it.
 */
import { parseSseEvent, type SseEvent } from '../../lib/index.js';
import type { StreamFraming } from './dialects/dialect.js';

export interface WholeEvent {
  /** The event as it came, separator included. */
  raw: string;
  /** Its name and data (an NDJSON line is a "message" with the line as data); undefined for an SSE comment or keep-alive. */
  fields: SseEvent | undefined;
}

const SSE_EVENT_END = /\r?\n\r?\n/g;

export class EventSplitter {
  private pending = '';

  constructor(private readonly framing: StreamFraming) {}

  /** Feeds the next piece of text; returns the events it completed, in order. */
  push(text: string): WholeEvent[] {
    const all = this.pending + text;
    const events: WholeEvent[] = [];
    let start = 0;
    if (this.framing === 'ndjson') {
      for (let end = all.indexOf('\n', this.pending.length); end >= 0; end = all.indexOf('\n', start)) {
        const raw = all.slice(start, end + 1);
        events.push({ raw, fields: { event: 'message', data: raw.trim() } });
        start = end + 1;
      }
    } else {
      // Only the new text (and the 3 characters before it, which may begin a separator) can hold a new boundary.
      SSE_EVENT_END.lastIndex = Math.max(0, this.pending.length - 3);
      for (let m = SSE_EVENT_END.exec(all); m; m = SSE_EVENT_END.exec(all)) {
        const raw = all.slice(start, m.index + m[0].length);
        events.push({ raw, fields: parseSseEvent(raw) });
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
