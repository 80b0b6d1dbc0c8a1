/** State that survives a restart: a breaker's saved state, and the file breakers and budgets are kept in (bounded, distrustful). */
import assert from 'node:assert/strict';
import { lstatSync, mkdtempSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { pino } from 'pino';
import { StateFile } from '../../sidecar/kept-state.js';
import { CircuitBreaker, type BreakerSettings } from '../../sidecar/resilience/circuit-breaker.js';
import { ManualClock } from '../../sidecar/resilience/clock.js';

const settings: BreakerSettings = {
  consecutiveFailures: 2,
  failureRate: { thresholdPercent: 0, minRequests: 10, windowMs: 10_000 },
  slowCall: { thresholdPercent: 0, durationMs: 1000 },
  openForMs: 1000,
  maxOpenForMs: 8000,
  halfOpen: { maxProbes: 1, successesToClose: 1 },
};
const fail = (b: CircuitBreaker) => {
  const a = b.tryAcquire();
  assert.ok(a.ok);
  b.record(a.permit, { failure: true, durationMs: 1 });
};
const silent = pino({ level: 'silent' });
const fileIn = () => join(mkdtempSync(join(tmpdir(), 'breakwater-breakers-')), 'breakers.json');

describe('a breaker\'s saved state', () => {
  it('carries the open time left and the re-open count into a new breaker', () => {
    const clock = new ManualClock();
    const before = new CircuitBreaker(settings, clock);
    fail(before);
    fail(before); // open for 1 s
    clock.advance(1000);
    fail(before); // the probe fails: open for 2 s, re-opened twice
    clock.advance(500);
    const saved = before.saved()!;
    assert.deepEqual(saved, { state: 'open', remainingMs: 1500, reopenings: 2, openedAt: Date.UTC(2026, 0, 1) + 1000 }, 'opened again when the probe failed');

    const after = new CircuitBreaker(settings, new ManualClock());
    const restarted = new ManualClock();
    const restored = new CircuitBreaker(settings, restarted);
    restored.restore(saved);
    const refused = restored.tryAcquire();
    assert.deepEqual(refused, { ok: false, retryAfterMs: 1500 }, 'no request until the saved open time is over');
    restarted.advance(1500);
    fail(restored); // the probe fails: the doubling goes on from the saved count
    assert.equal(restored.remainingOpenMs, 4000);
    assert.equal(after.saved(), undefined, 'a closed breaker saves nothing');
  });

  it('names its opening by the wall-clock time it opened, while open or half-open, and keeps it across a restart', () => {
    const clock = new ManualClock(Date.UTC(2026, 10, 24, 12));
    const b = new CircuitBreaker(settings, clock);
    assert.equal(b.openedAt, undefined, 'closed');
    fail(b);
    clock.advance(250);
    fail(b); // opens
    assert.equal(b.openedAt, Date.UTC(2026, 10, 24, 12) + 250);
    clock.advance(1000);
    assert.equal(b.stateName, 'half-open');
    assert.equal(b.openedAt, Date.UTC(2026, 10, 24, 12) + 250, 'the same opening while it probes');
    const restored = new CircuitBreaker(settings, new ManualClock(Date.UTC(2026, 10, 24, 13)));
    restored.restore(b.saved()!);
    assert.equal(restored.openedAt, Date.UTC(2026, 10, 24, 12) + 250, 'restored: still the same opening');
    const file = fileIn();
    const store = new StateFile(file, silent, () => Date.UTC(2026, 10, 24, 12, 1));
    store.save('h', { breakers: [{ upstream: 'u', scope: '*', ...b.saved()! }], budgets: [] });
    assert.equal(store.load('h').breakers[0]?.openedAt, Date.UTC(2026, 10, 24, 12) + 250, 'kept in the state file');
    const a = b.tryAcquire();
    assert.ok(a.ok);
    b.record(a.permit, { failure: false, durationMs: 1 }); // the probe succeeds: closed
    assert.equal(b.openedAt, undefined);
  });

  it('comes back half-open when its open time ran out while the sidecar was down, and leaves a breaker with a state of its own alone', () => {
    const clock = new ManualClock();
    const b = new CircuitBreaker(settings, clock);
    b.restore({ state: 'open', remainingMs: 0, reopenings: 1 });
    assert.equal(b.stateName, 'half-open');
    assert.ok(b.tryAcquire().ok, 'one probe');
    assert.equal(b.tryAcquire().ok, false, 'not a burst');
    b.restore({ state: 'open', remainingMs: 5000, reopenings: 3 });
    assert.equal(b.stateName, 'half-open', 'restore only applies to a breaker that is still closed');
  });
});

describe('the kept state file: breakers', () => {
  it('round-trips, in wall-clock time', () => {
    const file = fileIn();
    let wall = Date.UTC(2026, 10, 24, 12);
    const store = new StateFile(file, silent, () => wall);
    store.save('hash-1', { breakers: [{ upstream: 'openai', scope: 'gpt-4o', state: 'open', remainingMs: 9000, reopenings: 1 }, { upstream: 'local', scope: '*@1', state: 'half-open', remainingMs: 0, reopenings: 2 }], budgets: [] });
    wall += 4000; // the restart took 4 s
    assert.deepEqual(store.load('hash-1').breakers, [
      { upstream: 'openai', scope: 'gpt-4o', state: 'open', remainingMs: 5000, reopenings: 1 },
      { upstream: 'local', scope: '*@1', state: 'half-open', remainingMs: 0, reopenings: 2 },
    ]);
  });

  it('is ignored when missing, corrupt, from another policy version, too old or too large, and drops entries that are not its own', () => {
    const file = fileIn();
    let wall = Date.UTC(2026, 10, 24, 12);
    const store = new StateFile(file, silent, () => wall);
    assert.deepEqual(store.load('h').breakers, [], 'missing');
    writeFileSync(file, '{"config": "h", "breakers": [');
    assert.deepEqual(store.load('h').breakers, [], 'corrupt');
    store.save('h', { breakers: [{ upstream: 'u', scope: '*', state: 'open', remainingMs: 1000, reopenings: 0 }], budgets: [] });
    assert.deepEqual(store.load('other').breakers, [], 'another policy version');
    wall += 10 * 60_000 + 1;
    assert.deepEqual(store.load('h').breakers, [], 'saved more than 10 minutes ago');
    writeFileSync(file, JSON.stringify({ config: 'h', savedAt: wall, breakers: [{ upstream: 'u', scope: '*', state: 'open', until: wall + 10, reopenings: 0 }, { upstream: 'u', scope: '*', state: 'closed', until: 0, reopenings: 0 }, { upstream: 'x'.repeat(10_000), scope: '*', state: 'open', until: 0, reopenings: 0 }, { upstream: 'u', scope: 'm', state: 'open', until: 0, reopenings: 1e9 }, null, 'text'] }));
    assert.deepEqual(store.load('h').breakers, [{ upstream: 'u', scope: '*', state: 'open', remainingMs: 10, reopenings: 0 }]);
    writeFileSync(file, JSON.stringify({ config: 'h', savedAt: wall, breakers: [], budgets: [{ scope: 'policy', windowStart: 0, tokens: 1, cost: 0 }], padding: 'x'.repeat(3 << 20) }));
    assert.deepEqual(store.load('h'), { breakers: [], budgets: [] }, 'larger than 2 MiB');
  });

  it('never throws on what it reads, whatever the file holds', () => {
    const file = fileIn();
    const store = new StateFile(file, silent, () => 0);
    fc.assert(
      fc.property(fc.oneof(fc.jsonValue().map((v) => JSON.stringify({ config: 'h', savedAt: 0, breakers: v, budgets: v })), fc.jsonValue().map((v) => JSON.stringify(v)), fc.string()), (text) => {
        writeFileSync(file, text);
        const kept = store.load('h');
        for (const b of kept.breakers) assert.ok(b.remainingMs >= 0 && b.reopenings <= 64);
        for (const b of kept.budgets) assert.ok(b.tokens >= 0 && b.cost >= 0 && (b.scope === 'policy' || typeof b.upstream === 'string'));
      }),
      { numRuns: 300 },
    );
  });

  it('is never written through a link planted beside it: it goes to a new temporary file, renamed over the state file', () => {
    const file = fileIn();
    const victim = join(mkdtempSync(join(tmpdir(), 'breakwater-victim-')), 'victim.txt');
    writeFileSync(victim, 'not yours');
    symlinkSync(victim, `${file}.tmp`); // where a fixed temporary name would be written
    symlinkSync(victim, file);
    const store = new StateFile(file, silent, () => 0);
    store.save('h', { breakers: [], budgets: [{ scope: 'policy', windowStart: 0, tokens: 7, cost: 0 }] });
    assert.equal(readFileSync(victim, 'utf8'), 'not yours', 'the link\'s target is untouched');
    assert.ok(lstatSync(file).isFile(), 'the state file is now a regular file of its own');
    assert.deepEqual(store.load('h').budgets, [{ scope: 'policy', windowStart: 0, tokens: 7, cost: 0 }]);
    assert.deepEqual(readdirSync(dirname(file)).sort(), ['breakers.json', 'breakers.json.tmp'], 'no temporary file left behind');
  });

  it('is refused when it is not a regular file, such as a directory', () => {
    const file = fileIn();
    const store = new StateFile(dirname(file), silent, () => 0);
    assert.deepEqual(store.load('h'), { breakers: [], budgets: [] });
  });

  it('logs a write it cannot make instead of throwing', () => {
    const store = new StateFile('/nonexistent-dir/state.json', silent);
    store.save('h', { breakers: [], budgets: [] }); // logged, not thrown
    assert.deepEqual(store.load('h'), { breakers: [], budgets: [] });
  });
});

describe('the kept state file: budgets', () => {
  it('keeps what budgets spent across policy versions and however old, and drops entries that are not its own', () => {
    const file = fileIn();
    const wall = Date.UTC(2026, 10, 24, 12, 30);
    const store = new StateFile(file, silent, () => wall);
    const spent = [
      { scope: 'policy' as const, windowStart: Date.UTC(2026, 10, 24, 12), tokens: 10_400, cost: 0.25 },
      { scope: 'upstream' as const, upstream: 'openai', windowStart: Date.UTC(2026, 10, 24), tokens: 3, cost: 0 },
    ];
    store.save('v1', { breakers: [{ upstream: 'u', scope: '*', state: 'open', remainingMs: 1000, reopenings: 0 }], budgets: spent });
    assert.deepEqual(store.load('v2'), { breakers: [], budgets: spent }, 'a new policy version does not refill a budget');
    writeFileSync(file, JSON.stringify({ config: 'v1', savedAt: 0, breakers: [], budgets: [...spent, { scope: 'upstream', windowStart: 0, tokens: 1, cost: 0 }, { scope: 'policy', windowStart: 0, tokens: -5, cost: 0 }, { scope: 'other', windowStart: 0, tokens: 1, cost: 0 }, { scope: 'policy', windowStart: 0, tokens: 'many', cost: 0 }] }));
    assert.deepEqual(store.load('v1').budgets, spent, 'an upstream budget without its upstream, negative or non-numeric spending, an unknown scope');
  });
});
