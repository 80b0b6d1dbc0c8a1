/**
 * The stream's event splitter and SSE field reader, fuzzed against a plain
 * reference: whatever the events (data, event and id fields, comments,
 * keep-alives, LF or CRLF endings) and however the text is cut into chunks,
 * the splitter yields each whole event once, as it came, with its fields.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { parseSseEvent, type SseEvent } from '../../lib/index.js';
import { EventSplitter } from '../../sidecar/proxy/event-splitter.js';

/** The reference reader: the event's lines, one by one, as the WHATWG format reads them. */
function referenceFields(block: string): SseEvent | undefined {
  let event = '';
  const data: string[] = [];
  for (const raw of block.split('\n')) {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line === '' || line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const name = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(line[colon + 1] === ' ' ? colon + 2 : colon + 1);
    if (name === 'data') data.push(value);
    else if (name === 'event') event = value;
  }
  return data.length > 0 ? { event: event || 'message', data: data.join('\n') } : undefined;
}

/** A field value: any text without line breaks, JSON-like ones often. */
const value = fc.oneof(
  fc.string({ maxLength: 40 }).map((s) => s.replace(/[\r\n]/g, ' ')),
  fc.json({ maxDepth: 2 }).map((s) => s.replace(/[\r\n]/g, ' ')),
);
const line = fc.oneof(
  { weight: 4, arbitrary: value.map((v) => `data: ${v}`) },
  value.map((v) => `data:${v}`),
  value.map((v) => `event: ${v}`),
  value.map((v) => `id: ${v}`),
  value.map((v) => `: ${v}`),
  fc.constant('data'),
);
const ending = fc.constantFrom('\n', '\r\n');
/** One whole event: its lines and the blank line that ends it, with LF or CRLF endings (mixed too). */
const event = fc.tuple(fc.array(fc.tuple(line, ending), { minLength: 1, maxLength: 4 }), ending).map(([lines, blank]) => lines.map(([l, e]) => l + e).join('') + blank);

describe('the SSE event reader', () => {
  it('reads the fields of any event as the reference does, the one-data-line shape included', () => {
    fc.assert(
      fc.property(event, (block) => assert.deepEqual(parseSseEvent(block), referenceFields(block), JSON.stringify(block))),
      { numRuns: 2000 },
    );
    assert.deepEqual(parseSseEvent('data: {"a":1}\n\n'), { event: 'message', data: '{"a":1}' });
    assert.deepEqual(parseSseEvent('data:x\r\n\r\n'), { event: 'message', data: 'x' });
    assert.deepEqual(parseSseEvent('data: x\r\n\n'), { event: 'message', data: 'x' });
    assert.equal(parseSseEvent(': keep-alive\n\n'), undefined);
  });
});

describe('the event splitter', () => {
  it('yields every whole event once, as it came, however the text is cut, and holds back only an unfinished one', () => {
    fc.assert(
      fc.property(fc.array(event, { maxLength: 12 }), fc.string({ maxLength: 30 }).map((s) => s.replace(/\n(\r?\n)/g, '\n-$1')), fc.array(fc.nat(), { maxLength: 20 }), (events, tail, cuts) => {
        // A tail that is no whole event: no blank line in it (one ending in a line break could complete at the cut).
        const unfinished = tail.replace(/\r?\n$/, '');
        const text = events.join('') + unfinished;
        const splitter = new EventSplitter('sse');
        const got: string[] = [];
        let at = 0;
        for (const cut of [...cuts.map((c) => c % (text.length + 1)).sort((a, b) => a - b), text.length]) {
          for (const e of splitter.push(text.slice(at, Math.max(at, cut)))) {
            assert.deepEqual(e.fields, referenceFields(e.raw));
            got.push(e.raw);
          }
          at = Math.max(at, cut);
        }
        assert.deepEqual(got, events);
        assert.equal(splitter.flush(), unfinished);
      }),
      { numRuns: 1000 },
    );
  });
});
