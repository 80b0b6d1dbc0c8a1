/**
 * The short top-level members of a JSON object, read without parsing the
 * rest: the same members JSON.parse gives, whatever the spacing, nesting,
 * escapes and duplicates, and no answer for text that is not an object.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { shortMembers } from '../../lib/index.js';

const bytes = (text: string) => Buffer.from(text, 'utf8');
/** The members JSON.parse gives whose values, as written, take at most `max` bytes. */
const expected = (o: Record<string, unknown>, max: number) => Object.fromEntries(Object.entries(o).filter(([, v]) => Buffer.byteLength(JSON.stringify(v)) <= max));

describe('short JSON members', () => {
  it('agree with JSON.parse on every generated object, compact or indented, for members up to the limit', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.jsonValue()), fc.nat({ max: 64 }), fc.boolean(), (o, max, indented) => {
        const text = indented ? JSON.stringify(o, null, 2) : JSON.stringify(o);
        // JSON.stringify writes a member's value the same way at the top level (indented values are longer, so only check compact ones).
        const got = shortMembers(bytes(text), indented ? Infinity : max);
        assert.deepEqual({ ...got }, JSON.parse(JSON.stringify(indented ? o : expected(o, max))));
      }),
      { numRuns: 500 },
    );
  });

  it('finds stream and the cap wherever they are, skipping long members and brackets and quotes inside strings', () => {
    const long = 'x'.repeat(300_000);
    const body = `{"messages":[{"role":"user","content":"${long} \\" ] } {"}],"model":"gpt-4o","tools":[${'{"a":[1,{"b":"]"}]},'.repeat(1000)}{}],"stream":true,"max_tokens":7}`;
    assert.deepEqual({ ...shortMembers(bytes(body), 1024) }, { model: 'gpt-4o', stream: true, max_tokens: 7 });
  });

  it('lets a later duplicate win, as JSON.parse does, also over an earlier short one', () => {
    assert.deepEqual({ ...shortMembers(bytes('{"model":"cheap","x":1,"model":"gpt-4o"}'), 100) }, { x: 1, model: 'gpt-4o' });
    assert.deepEqual({ ...shortMembers(bytes(`{"model":"cheap","model":"${'m'.repeat(200)}"}`), 100) }, {}, 'a long later duplicate takes the short one out');
  });

  it('reads nothing from text that is not an object, and keeps __proto__ a plain key', () => {
    for (const text of ['', '[1]', '"x"', '{"a":1', '{"a" 1}', '{"a":1,}', '{"a":tru}', '{a:1}', '{"a":"unclosed}']) assert.equal(shortMembers(bytes(text), 100), undefined, text);
    const got = shortMembers(bytes('{"__proto__":{"polluted":true}}'), 100)!;
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    assert.deepEqual(got.__proto__, { polluted: true });
  });
});
