/**
 * Sidecar reports drive the policy's status, and a sidecar is only as
 * trustworthy as its pod: reports (over the wire, or recorded by another
 * replica) are checked field by field before they count.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { validateReport } from '../../api/index.js';
import { RecordedReports, reportsConfigMapName } from '../../controller/report-store.js';

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
      [{ ...good, opened: [{ upstream: 'someone-else', breaker: '*', openedAt: 1 }] }, /opened/],
      [{ ...good, opened: [{ upstream: 'primary', breaker: 'm'.repeat(129), openedAt: 1 }] }, /opened/],
      [{ ...good, opened: [{ upstream: 'primary', breaker: '*', openedAt: -1 }] }, /opened/],
      [{ ...good, opened: Array.from({ length: 17 }, (_, i) => ({ upstream: 'primary', breaker: '*', openedAt: i })) }, /opened/],
      [{ ...good, opened: {} }, /opened/],
    ];
    for (const [report, why] of cases) {
      const checked = validateReport(report, upstreams);
      assert.equal(checked.ok, false, JSON.stringify(report));
      if (!checked.ok) assert.match(checked.error, why);
    }
  });

  it('takes the breakers that opened, each with its upstream, breaker and opening time', () => {
    const opened = [{ upstream: 'primary', breaker: 'gpt-4o@1', openedAt: Date.UTC(2026, 0, 1) }];
    const checked = validateReport({ ...good, opened: [{ ...opened[0], extra: 'dropped' }] }, upstreams);
    assert.ok(checked.ok);
    assert.deepEqual(checked.report.opened, opened);
  });

  it('cuts a rejection\'s error to 1,024 characters', () => {
    const checked = validateReport({ ...good, rejected: { version, error: 'e'.repeat(100_000) } }, upstreams);
    assert.ok(checked.ok && checked.report.rejected!.error.length === 1024);
  });

  it('never throws on anything JSON can hold', () => {
    fc.assert(fc.property(fc.jsonValue(), (value) => void validateReport(value, upstreams)), { numRuns: 500 });
  });

  it('takes the newest report another replica recorded, checked the same way', () => {
    const recorded = new RecordedReports();
    const cm = (name: string, data: Record<string, string>) => ({ metadata: { name }, data });
    const entry = (at: number, report: unknown) => JSON.stringify({ at, report });
    const older = { ...good, breakers: { primary: { closed: 3, halfOpen: 0, open: 0 } } };
    assert.deepEqual(recorded.upsert(cm('breakwater-reports-a', { 'shop_chat-1': entry(1000, older) })), ['shop/chat-1']);
    assert.deepEqual(recorded.upsert(cm('breakwater-reports-b', { 'shop_chat-1': entry(2000, good), 'shop_chat-2': '{not json' })), ['shop/chat-1', 'shop/chat-2']);
    assert.deepEqual(recorded.reportFor('shop/chat-1', upstreams)?.report, good, 'the newest of the two replicas');
    assert.equal(recorded.reportFor('shop/chat-2', upstreams), undefined);
    recorded.upsert(cm('breakwater-reports-b', { 'shop_chat-1': entry(3000, { ...good, breakers: { forged: { closed: 0, halfOpen: 0, open: 50 } } }) }));
    assert.deepEqual(recorded.reportFor('shop/chat-1', upstreams)?.report, older, 'an invalid newer report does not count');
    assert.deepEqual(recorded.remove(cm('breakwater-reports-a', {})), ['shop/chat-1']);
    assert.equal(recorded.reportFor('shop/chat-1', upstreams), undefined);
  });

  it('names a replica\'s ConfigMap with a DNS subdomain, whatever its identity', () => {
    assert.equal(reportsConfigMapName('breakwater-7d9f-x2'), 'breakwater-reports-breakwater-7d9f-x2');
    assert.equal(reportsConfigMapName('Host_Name:1234'), 'breakwater-reports-host-name-1234');
    fc.assert(fc.property(fc.string(), (identity) => /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(reportsConfigMapName(identity)) && reportsConfigMapName(identity).length <= 253));
  });
});

describe('concurrency limits in a report', () => {
  const limit = (extra: object = {}) => ({ upstream: 'primary', mode: 'adaptive', limit: 40, min: 4, max: 1024, ...extra });

  it('takes each of the pod\'s upstreams once, with its mode and min <= limit <= max, and drops what else an entry holds', () => {
    const checked = validateReport({ ...good, concurrency: [limit({ extra: 'x' }), limit({ upstream: 'local', mode: 'fixed', limit: 32, min: 32, max: 32 })] }, upstreams);
    assert.ok(checked.ok);
    assert.deepEqual(checked.report.concurrency, [limit(), limit({ upstream: 'local', mode: 'fixed', limit: 32, min: 32, max: 32 })]);
    assert.ok(validateReport(good, upstreams).ok, 'absent from sidecars older than the field');
  });

  it('refuses limits of another policy\'s upstreams, out of bounds, named twice, or too many', () => {
    for (const concurrency of [
      [limit({ upstream: 'someone-else' })],
      [limit({ mode: 'turbo' })],
      [limit({ limit: 0, min: 0 })],
      [limit({ limit: 2000, max: 1024 })],
      [limit({ limit: 3, min: 4 })],
      [limit({ max: 10_001, limit: 10_001 })],
      [limit({ limit: 4.5 })],
      [limit({ limit: '40' })],
      [limit(), limit({ limit: 50 })],
      Array.from({ length: 33 }, () => limit()),
      {},
      null,
    ]) {
      const checked = validateReport({ ...good, concurrency }, upstreams);
      assert.ok(!checked.ok && checked.error.startsWith('concurrency:'), JSON.stringify(concurrency).slice(0, 80));
    }
  });
});
