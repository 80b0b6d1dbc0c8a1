/**
 * The SSE splitter and field reader (lib/sse.ts), fuzzed against a plain
 * reference that reads the whole text at once, line by line, as the WHATWG
 * event-stream format does: whatever the events (data, event, id and retry
 * fields, unknown fields, comments, several data lines), whatever the line
 * endings (LF, CRLF, a bare CR, mixed), and however the text is cut into
 * pieces (between a CR and its LF too), the splitter yields each whole event
 * once, as it came (the raw texts and what it holds back make up the input
 * exactly), with the fields the reference reads.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { parseSseEvent, SseReader, SseSplitter, type SseEvent } from '../../lib/index.js';

/** The reference's lines of `text`: each with its ending (CRLF, CR or LF), and the unfinished last one (without an ending). */
function referenceLines(text: string): { lines: { line: string; raw: string }[]; rest: string } {
  const lines: { line: string; raw: string }[] = [];
  const ending = /\r\n|\r|\n/g;
  let from = 0;
  for (let m = ending.exec(text); m; m = ending.exec(text)) {
    lines.push({ line: text.slice(from, m.index), raw: text.slice(from, m.index + m[0].length) });
    from = m.index + m[0].length;
  }
  return { lines, rest: text.slice(from) };
}

/** The reference reader of one event's lines: the fields as the WHATWG format dispatches them (undefined when it dispatches nothing). */
function referenceFields(lines: string[]): SseEvent | undefined {
  let event = '';
  const data: string[] = [];
  for (const line of lines) {
    if (line === '' || line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const name = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (name === 'data') data.push(value);
    else if (name === 'event') event = value;
    // id and retry set the stream's state, and unknown fields are ignored: neither is an event's field here.
  }
  return data.length > 0 ? { event: event === '' ? 'message' : event, data: data.join('\n') } : undefined;
}

/**
 * The reference splitting of a whole text: an event is its lines up to a blank line that follows one
 * of them (blank lines with nothing before them go with the next event's text); the rest is unfinished.
 */
function referenceEvents(text: string): { events: { raw: string; fields: SseEvent | undefined }[]; rest: string } {
  const { lines, rest } = referenceLines(text);
  const events: { raw: string; fields: SseEvent | undefined }[] = [];
  let raw = '';
  let fieldLines: string[] = [];
  for (const { line, raw: lineRaw } of lines) {
    raw += lineRaw;
    if (line !== '') {
      fieldLines.push(line);
      continue;
    }
    if (fieldLines.length === 0) continue; // a blank line that ends nothing
    events.push({ raw, fields: referenceFields(fieldLines) });
    raw = '';
    fieldLines = [];
  }
  return { events, rest: raw + rest };
}

/** A field value: any text without line breaks (JSON often, as streams carry), now and then with odd characters. */
const value = fc.oneof(
  fc.string({ maxLength: 30 }),
  fc.string({ maxLength: 12, unit: 'binary' }),
  fc.json({ maxDepth: 2 }),
  fc.constantFrom('[DONE]', ' leading space', '', ':', 'data: inside', 'message_stop'),
).map((s) => s.replace(/[\r\n]/g, ' '));
/** A line of an event (never blank). */
const line = fc.oneof(
  { weight: 5, arbitrary: value.map((v) => `data: ${v}`) },
  { weight: 2, arbitrary: value.map((v) => `data:${v}`) },
  { weight: 2, arbitrary: value.map((v) => `event: ${v}`) },
  value.map((v) => `event:${v}`),
  value.map((v) => `id: ${v}`),
  fc.nat({ max: 100_000 }).map((n) => `retry: ${n}`),
  value.map((v) => `:${v}`),
  fc.constant(': keep-alive'),
  fc.constant('data'),
  fc.constant('event'),
  value.map((v) => `x-unknown: ${v}`),
);
const lineEnding = fc.constantFrom('\n', '\r\n', '\r');
/** An event: its lines (several data lines, comments and all), each with its ending, then the blank line. */
const event = fc
  .tuple(fc.array(fc.tuple(line, lineEnding), { minLength: 1, maxLength: 5 }), lineEnding)
  // (A line ending in CR and a blank line that is a bare LF would make one CRLF: that blank line is a CRLF then.)
  .map(([lines, blank]) => lines.map(([l, e]) => l + e).join('') + (lines.at(-1)![1] === '\r' && blank === '\n' ? '\r\n' : blank));
/** What may follow the last whole event: lines of an event not yet ended by a blank line, the last one perhaps cut. */
const unfinished = fc
  .tuple(fc.array(fc.tuple(line, lineEnding), { maxLength: 3 }), fc.option(line.map((l) => l.slice(0, Math.max(1, l.length - 1)))))
  .map(([lines, last]) => lines.map(([l, e]) => l + e).join('') + (last ?? ''));

/**
 * Where events end in `text`. The splitter gives an event as soon as its blank line is certain: one
 * ending in a CR at the end of a piece is, and the LF of its CRLF, in the next piece, then begins the
 * next event's text. So an end may come one character early: just after such a CR.
 */
function sameEnds(got: string[], expected: string[], text: string, pieceEnds: Set<number>): void {
  assert.equal(got.length, expected.length, 'as many events as the reference');
  let gotEnd = 0;
  let expectedEnd = 0;
  got.forEach((raw, i) => {
    gotEnd += raw.length;
    expectedEnd += expected[i]!.length;
    if (gotEnd === expectedEnd) return;
    assert.equal(gotEnd, expectedEnd - 1, `event ${i} ends at ${gotEnd}, the reference's at ${expectedEnd}`);
    assert.equal(text.slice(gotEnd - 1, gotEnd + 1), '\r\n', 'only the LF of a CRLF goes with the next event');
    assert.ok(pieceEnds.has(gotEnd), 'and only when a piece ended with its CR');
  });
}

/** `text` cut at `cuts` (positions in it, any order), and also right after each CR when `afterCR`: pieces never empty, as a stream gives them. */
function cutInto(text: string, cuts: number[], afterCR: boolean): string[] {
  const at = new Set(cuts.map((c) => c % (text.length + 1)));
  if (afterCR) for (let i = text.indexOf('\r'); i >= 0; i = text.indexOf('\r', i + 1)) at.add(i + 1);
  const sorted = [...at, text.length].filter((c) => c > 0).sort((a, b) => a - b);
  const pieces: string[] = [];
  let from = 0;
  for (const c of sorted) {
    if (c > from) pieces.push(text.slice(from, c));
    from = c;
  }
  return pieces;
}

describe('the SSE event reader', () => {
  it('reads the fields of any whole event as the reference does, the one-data-line shape included', () => {
    fc.assert(
      fc.property(event, (block) => {
        const { events } = referenceEvents(block);
        assert.equal(events.length, 1);
        assert.deepEqual(parseSseEvent(block), events[0]!.fields, JSON.stringify(block));
      }),
      { numRuns: 2000 },
    );
    assert.deepEqual(parseSseEvent('data: {"a":1}\n\n'), { event: 'message', data: '{"a":1}' });
    assert.deepEqual(parseSseEvent('data:x\r\n\r\n'), { event: 'message', data: 'x' });
    assert.deepEqual(parseSseEvent('data: x\r\n\n'), { event: 'message', data: 'x' });
    assert.deepEqual(parseSseEvent('data: x\r\r'), { event: 'message', data: 'x' });
    assert.deepEqual(parseSseEvent('event: a\rdata: 1\r\ndata:2\ndata\r\r'), { event: 'a', data: '1\n2\n' });
    assert.deepEqual(parseSseEvent('data:  two spaces\n\n'), { event: 'message', data: ' two spaces' });
    assert.equal(parseSseEvent(': keep-alive\n\n'), undefined);
    assert.equal(parseSseEvent('id: 7\nretry: 100\n\n'), undefined);
  });
});

describe('the SSE splitter', () => {
  it('yields every whole event once, as it came, with the reference fields, however the text is cut and whatever its line endings (property)', () => {
    fc.assert(
      fc.property(fc.array(event, { maxLength: 10 }), unfinished, fc.array(fc.nat(), { maxLength: 25 }), fc.boolean(), (events, tail, cuts, afterCR) => {
        const text = events.join('') + tail;
        const expected = referenceEvents(text);
        const splitter = new SseSplitter();
        const reader = new SseReader();
        const got: { raw: string; fields: SseEvent | undefined }[] = [];
        const read: SseEvent[] = [];
        let fed = 0;
        let yielded = 0;
        const pieceEnds = new Set<number>();
        for (const piece of cutInto(text, cuts, afterCR)) {
          for (const e of splitter.push(piece)) {
            got.push(e);
            yielded += e.raw.length;
          }
          read.push(...reader.push(piece));
          fed += piece.length;
          pieceEnds.add(fed);
          assert.equal(splitter.held, fed - yielded, 'it holds back exactly what it has not yielded');
        }
        const context = JSON.stringify(text);
        sameEnds(
          got.map((e) => e.raw),
          expected.events.map((e) => e.raw),
          text,
          pieceEnds,
        );
        assert.deepEqual(
          got.map((e) => e.fields),
          expected.events.map((e) => e.fields),
          context,
        );
        for (const e of got) assert.deepEqual(parseSseEvent(e.raw), e.fields, 'its fields are those of its raw text');
        assert.equal(got.map((e) => e.raw).join('') + splitter.flush(), text, 'the raw texts and what is held back are the input, exactly');
        assert.deepEqual(read, expected.events.flatMap((e) => (e.fields ? [e.fields] : [])), 'the reader gives the fields of the events with data');
      }),
      { numRuns: 1500 },
    );
  });

  it('holds back only the unfinished event, and reads a CRLF cut between two pieces as one line ending', () => {
    const splitter = new SseSplitter();
    assert.deepEqual(splitter.push('data: a\r'), []);
    // The LF completes the CRLF: it is not the blank line that would end the event.
    assert.deepEqual(splitter.push('\ndata: b\r'), []);
    assert.deepEqual(splitter.push('\n\r'), [{ raw: 'data: a\r\ndata: b\r\n\r', fields: { event: 'message', data: 'a\nb' } }]);
    // ...and this LF is the rest of the blank line's CRLF, so it goes with the next event.
    assert.deepEqual(splitter.push('\nevent: e\rdata: c\r\r'), [{ raw: '\nevent: e\rdata: c\r\r', fields: { event: 'e', data: 'c' } }]);
    assert.equal(splitter.held, 0);
    assert.deepEqual(splitter.push('data: [DONE]'), []);
    assert.equal(splitter.held, 'data: [DONE]'.length);
    assert.equal(splitter.flush(), 'data: [DONE]');
    assert.equal(splitter.held, 0);
  });

  it('reads an event whose first line ends in a bare CR and whose last ends in LF line by line', () => {
    assert.deepEqual(parseSseEvent('data: a\revent: e\n\n'), { event: 'e', data: 'a' });
    assert.deepEqual(new SseSplitter().push('data: a\rdata: b\n\n')[0]?.fields, { event: 'message', data: 'a\nb' });
  });

  it('gives blank lines with nothing before them to the next event', () => {
    assert.deepEqual(new SseSplitter().push('\n\ndata: x\n\n'), [{ raw: '\n\ndata: x\n\n', fields: { event: 'message', data: 'x' } }]);
    // The same after a CRLF cut between two pieces: its LF goes with the next event, and a blank line follows it.
    const splitter = new SseSplitter();
    splitter.push('data: a\r\n\r');
    assert.deepEqual(splitter.push('\n\ndata: b\n\n'), [{ raw: '\n\ndata: b\n\n', fields: { event: 'message', data: 'b' } }]);
  });

  it('reads `data:[DONE]` (no space) as the data [DONE]', () => {
    assert.deepEqual(new SseSplitter().push('data:[DONE]\n\n'), [{ raw: 'data:[DONE]\n\n', fields: { event: 'message', data: '[DONE]' } }]);
  });
});
