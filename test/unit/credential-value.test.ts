/**
 * What makes a Secret's value a usable credential (red team 26, F1/F10): the
 * one rule the controller's status and the sidecar both apply. A value that
 * would not go out as the Secret holds it, or not as one header, is refused
 * with a reason that never quotes it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { credentialValue, MAX_CREDENTIAL_CHARS } from '../../api/index.js';

describe('a credential value', () => {
  it('is the value trimmed, as a key file\'s would be', () => {
    assert.deepEqual(credentialValue('  sk-abc\n'), { value: 'sk-abc' });
    assert.deepEqual(credentialValue('user:pass word\twith tab'), { value: 'user:pass word\twith tab' });
    assert.deepEqual(credentialValue('x'.repeat(MAX_CREDENTIAL_CHARS)), { value: 'x'.repeat(MAX_CREDENTIAL_CHARS) });
  });

  it('is refused, with why and without the value, when it is blank, has a line break or a control character, is past ASCII, or is over 16 KiB', () => {
    const cases: [string, RegExp][] = [
      ['', /empty/],
      ['   \n', /empty/],
      ['sk-one\r\nx-injected: 1', /line break/],
      ['sk-one\nsk-two', /line break/],
      ['sk\u0000', /control character/],
      ['sk\u001b[0m', /control character/],
      ['sk-\u00e9t\u00e9', /outside ASCII/],
      ['sk-\u{1F511}', /outside ASCII/],
      ['sk-\ufffd', /outside ASCII/],
      ['x'.repeat(MAX_CREDENTIAL_CHARS + 1), /longer than 16 KiB/],
    ];
    for (const [raw, why] of cases) {
      const checked = credentialValue(raw);
      assert.equal(checked.value, undefined, JSON.stringify(raw.slice(0, 20)));
      assert.match(checked.problem!, why);
      if (raw.trim()) assert.ok(!checked.problem!.includes(raw.trim().slice(0, 6)), 'the reason does not quote the value');
    }
  });
});
