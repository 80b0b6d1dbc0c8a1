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

/** Just past the first blank line (LF or CRLF endings) whose line break is at or after `from`; -1 when none is complete. */
function sseEventEnd(text: string, from: number): number {
  for (let nl = text.indexOf('\n', from); nl >= 0; nl = text.indexOf('\n', nl + 1)) {
    const next = text.charCodeAt(nl + 1);
    if (next === 10 /* \n */) return nl + 2;
    if (next === 13 /* \r */ && text.charCodeAt(nl + 2) === 10) return nl + 3;
  }
  return -1;
}

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
      // Only the new text (and the 2 characters before it, which may begin a separator) can hold a new boundary.
      for (let end = sseEventEnd(all, Math.max(0, this.pending.length - 2)); end >= 0; end = sseEventEnd(all, start)) {
        const raw = all.slice(start, end);
        events.push({ raw, fields: parseSseEvent(raw) });
        start = end;
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
