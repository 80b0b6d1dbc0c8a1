/**
 * Sidecar reports drive the policy's status, and a sidecar is only as
 * trustworthy as its pod: reports (over the wire, or recorded on the pod)
 * are checked field by field before they count.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { validateReport } from '../../api/index.js';
import { reportOf, REPORT_ANNOTATION } from '../../controller/report-store.js';

const version = { source: 'controller', policy: 'shop/chat', generation: 3, hash: 'abc' };
const upstreams = new Set(['primary', 'local']);
const good = { applied: version, breakers: { primary: { closed: 2, halfOpen: 0, open: 1 } } };

describe('sidecar report validation', () => {
  it('takes a well-formed report for the pod\'s own upstreams', () => {
    const checked = validateReport(good, upstreams);
    assert.ok(checked.ok);
    assert.deepEqual(checked.report, good);
  });

  it('refuses what would forge or bloat the status, naming why', () => {
    const cases: [unknown, RegExp][] = [
      [null, /JSON object/],
      [[], /JSON object/],
      [{ ...good, applied: { ...version, generation: -1 } }, /applied/],
      [{ ...good, breakers: { 'someone-else': { closed: 0, halfOpen: 0, open: 9 } } }, /not an upstream of this pod's policy/],
      [{ ...good, breakers: { primary: { closed: 0, halfOpen: 0, open: 1e12 } } }, /counts/],
      [{ ...good, breakers: { primary: { closed: 0, halfOpen: 0, open: '1' } } }, /counts/],
      [{ ...good, rejected: { error: 'x' } }, /rejected/],
    ];
    for (const [report, why] of cases) {
      const checked = validateReport(report, upstreams);
      assert.equal(checked.ok, false, JSON.stringify(report));
      if (!checked.ok) assert.match(checked.error, why);
    }
  });

  it('cuts a rejection\'s error to 1,024 characters', () => {
    const checked = validateReport({ ...good, rejected: { version, error: 'e'.repeat(100_000) } }, upstreams);
    assert.ok(checked.ok && checked.report.rejected!.error.length === 1024);
  });

  it('never throws on anything JSON can hold', () => {
    fc.assert(fc.property(fc.jsonValue(), (value) => void validateReport(value, upstreams)), { numRuns: 500 });
  });

  it('checks a report recorded on a pod the same way', () => {
    const pod = (text: string) => ({ metadata: { annotations: { [REPORT_ANNOTATION]: text } } });
    assert.deepEqual(reportOf(pod(JSON.stringify(good)), upstreams), good);
    assert.equal(reportOf(pod(JSON.stringify({ ...good, breakers: { forged: { closed: 0, halfOpen: 0, open: 50 } } })), upstreams), undefined);
    assert.equal(reportOf(pod('{not json'), upstreams), undefined);
  });
});
