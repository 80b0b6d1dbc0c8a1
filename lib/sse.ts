/**
 * Server-sent events (the WHATWG event-stream format), read once: text goes
 * in as it arrives, whole events come out, each with the text it came as
 * (so a proxy relays it byte for byte) and its fields. Lines end with LF,
 * CRLF or a bare CR, also when a CRLF is cut between two pieces; `data`
 * lines join with LF; lines starting with a colon are comments (keep-alives);
 * a byte-order mark before a line is no part of it.
 * Only the unfinished event is kept between calls, as the pieces it came
 * in, and a piece is searched once, so a long stream, or a long event in
 * many pieces, is read in linear time.
 */

import { PendingText } from './pending-text.js';

export interface SseEvent {
  /** The `event:` field, "message" when absent. */
  event: string;
  /** The `data:` lines, joined with newlines. */
  data: string;
}

export interface SseBlock {
  /** The event as it came, up to and including the blank line that ends it. */
  raw: string;
  /** Its fields; undefined for a block without data (comments, keep-alives, an id or retry alone). */
  fields: SseEvent | undefined;
}

const LF = 10;
const CR = 13;

/**
 * The value of `block`, a whole event, when it has the usual shape: one `data:` line and a blank
 * line, both ending in LF; undefined for any other shape. `noCR`: the block is known to hold no CR.
 */
function singleDataLine(block: string, noCR: boolean): string | undefined {
  if (!block.startsWith('data:')) return undefined;
  const nl = block.indexOf('\n');
  if (nl < 0 || nl !== block.length - 2 || (!noCR && block.indexOf('\r') >= 0)) return undefined;
  return block.slice(block.charCodeAt(5) === 32 /* space */ ? 6 : 5, nl);
}

/** The fields of one whole event, `block` being its lines; undefined for one without data. `noCR`: the block is known to hold no CR. */
export function parseSseEvent(block: string, noCR = false): SseEvent | undefined {
  const data = singleDataLine(block, noCR);
  if (data !== undefined) return { event: 'message', data };
  let event = '';
  const lines: string[] = [];
  for (let line of block.split(/\r\n|\r|\n/)) {
    // A byte-order mark begins the stream per the spec; clients that decode line by line strip one anywhere, so it is read as they read it.
    if (line.charCodeAt(0) === 0xfeff) line = line.slice(1);
    if (line === '' || line.charCodeAt(0) === 58 /* : */) continue;
    const colon = line.indexOf(':');
    const name = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(line.charCodeAt(colon + 1) === 32 ? colon + 2 : colon + 1);
    if (name === 'data') lines.push(value);
    else if (name === 'event') event = value;
  }
  return lines.length > 0 ? { event: event || 'message', data: lines.join('\n') } : undefined;
}

const asBlock = (raw: string, fields: SseEvent | undefined): SseBlock => ({ raw, fields });

/**
 * Splits a stream's text into whole events (see the module's comment). Each piece is searched once,
 * and the unfinished event's text is kept as the pieces it came in, joined only once it is whole.
 */
export class SseSplitter {
  private readonly pending = new PendingText();
  /** Whether a CR was in the unfinished event's pieces. */
  private pendingHadCR = false;
  /** The line being read has no character yet. */
  private lineEmpty = true;
  /** The unfinished event has a line (so the next blank line ends it). */
  private hasLine = false;
  /** The last piece ended in a CR: an LF that begins the next one belongs to that line ending. */
  private afterCR = false;

  /** Feeds the next piece of text; returns the events it completed, in order, each as `make` makes it of its text and fields. */
  push<T = SseBlock>(text: string, make: (raw: string, fields: SseEvent | undefined) => T = asBlock as (raw: string, fields: SseEvent | undefined) => T): T[] {
    if (text === '') return [];
    const blocks: T[] = [];
    let at = 0;
    // The LF of a CRLF cut in two ends no line of its own.
    if (this.afterCR && text.charCodeAt(0) === LF) at = 1;
    this.afterCR = false;
    let eventStart = 0;
    // The usual stream has no CR at all: LF is then the only line ending to look for.
    const hasCR = text.indexOf('\r', at) >= 0;
    for (;;) {
      let end: number;
      let next: number;
      if (!hasCR) {
        end = text.indexOf('\n', at);
        if (end < 0) break;
        next = end + 1;
      } else {
        const lf = text.indexOf('\n', at);
        const cr = text.indexOf('\r', at);
        if (cr >= 0 && (lf < 0 || cr < lf)) {
          end = cr;
          if (cr + 1 === text.length) this.afterCR = true;
          next = text.charCodeAt(cr + 1) === LF ? cr + 2 : cr + 1;
        } else if (lf >= 0) {
          end = lf;
          next = lf + 1;
        } else break;
      }
      if (end > at) this.lineEmpty = false;
      if (!this.lineEmpty) this.hasLine = true;
      else if (this.hasLine) {
        // A blank line after the event's lines: the event is whole. (Blank lines before any line dispatch nothing, and go with the next event's text.)
        const raw = this.pending.take(text.slice(eventStart, next));
        blocks.push(make(raw, parseSseEvent(raw, !hasCR && !this.pendingHadCR)));
        this.pendingHadCR = false;
        this.hasLine = false;
        eventStart = next;
      }
      this.lineEmpty = true;
      at = next;
    }
    if (at < text.length) this.lineEmpty = false;
    if (eventStart < text.length) {
      this.pending.add(eventStart === 0 ? text : text.slice(eventStart));
      this.pendingHadCR ||= hasCR;
    }
    return blocks;
  }

  /** Characters of an unfinished event held back (callers bound it). */
  get held(): number {
    return this.pending.length;
  }

  /** Gives up what is held back (at the end of the stream). */
  flush(): string {
    const rest = this.pending.take();
    this.pendingHadCR = false;
    this.lineEmpty = true;
    this.hasLine = false;
    this.afterCR = false;
    return rest;
  }
}

/** Reads events' fields only: for a client of an SSE stream (the controller's config stream). */
export class SseReader {
  private readonly splitter = new SseSplitter();

  /** Feeds the next piece of the stream; returns the events it completed. */
  push(text: string): SseEvent[] {
    const events: SseEvent[] = [];
    for (const block of this.splitter.push(text)) if (block.fields) events.push(block.fields);
    return events;
  }

  /** Characters of an unfinished event held back (callers bound it). */
  get pending(): number {
    return this.splitter.held;
  }
}
