import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { AdaptiveLimit, type AdaptiveLimitSettings, type LimitChange } from '../../sidecar/resilience/adaptive-limit.js';
import { ManualClock } from '../../sidecar/resilience/clock.js';

function limiter(settings: Partial<AdaptiveLimitSettings> = {}) {
  const clock = new ManualClock();
  const changes: LimitChange[] = [];
  const l = new AdaptiveLimit({ min: 1, max: 1000, initial: 10, ...settings }, clock, (_n, why) => changes.push(why));
  /** `n` good answers, each with the limit in use (or `inFlight` at the endpoint). */
  const serve = (n: number, ttftMs?: number, inFlight?: number) => {
    for (let i = 0; i < n; i++) l.served(clock.now(), inFlight ?? l.limit, ttftMs);
  };
  return { l, clock, changes, serve };
}

describe('adaptive limit', () => {
  it('slow start: doubles per round of good answers while in use, and not while idle', () => {
    const { l, serve } = limiter();
    serve(10);
    assert.equal(l.limit, 20);
    serve(20);
    assert.equal(l.limit, 40);
    l.served(0, 5); // 5 in flight of 40: the limit is not what holds the traffic back
    assert.equal(l.limit, 40);
    assert.equal(l.phase, 'slow-start');
  });

  it('cuts to 90% of what the provider held when it refused, and leaves slow start', () => {
    const { l, clock } = limiter({ initial: 200 });
    clock.advance(10);
    l.refused(clock.now(), 50, 50);
    assert.equal(l.limit, 45);
    assert.equal(l.phase, 'probing');
    l.refused(clock.now() + 1, 45, 45);
    assert.equal(l.limit, 40, 'never above the limit it had');
    l.refused(clock.now() + 2, 500, 501);
    assert.equal(l.limit, 40, 'the provider still holds more than the cut limit: the same overload');
  });

  it('takes a burst of refusals of attempts sent before the cut as one overload', () => {
    const { l, clock } = limiter({ initial: 100 });
    clock.advance(100);
    const sent = clock.now() - 50;
    for (let i = 0; i < 20; i++) l.refused(sent, 100, 100);
    assert.equal(l.limit, 90);
    clock.advance(10);
    l.refused(clock.now(), 90, 90);
    assert.equal(l.limit, 81, 'an attempt sent after the cut is news');
  });

  it('holds growth until the Retry-After has passed', () => {
    const { l, clock, serve } = limiter({ initial: 100 });
    l.refused(clock.now(), 100, 100, 2000);
    const cut = l.limit;
    serve(1000);
    assert.equal(l.limit, cut);
    clock.advance(2000);
    serve(cut);
    assert.equal(l.limit, cut + 1);
  });

  it('probes after a cut: a round adds 1, 2, 4… up to what the provider held, stays there 3 rounds, then probes past it', () => {
    const { l, clock, serve } = limiter({ initial: 100 });
    l.refused(clock.now(), 100, 100);
    const seen = [l.limit];
    for (let round = 0; round < 10; round++) {
      serve(l.limit, undefined, 100); // the provider holds what it held when it refused
      seen.push(l.limit);
    }
    assert.deepEqual(seen, [90, 91, 93, 97, 100, 100, 100, 100, 101, 103, 107]);
    assert.equal(l.ceilingNow, 100);
    clock.advance(1);
    l.refused(clock.now(), 100, 100);
    assert.equal(l.limit, 100, 'a probe past the ceiling that is refused goes back to it, not 10% under it');
    clock.advance(1);
    l.refused(clock.now(), 80, 80);
    assert.equal(l.limit, 72, 'at the ceiling, an overload is a provider that shrank: 90% of what it held');
  });

  it('at a small limit, probes past the ceiling after 60 good answers at it and a round, not 3 rounds, and goes back to it when refused', () => {
    const { l, clock, serve } = limiter({ initial: 10 });
    l.refused(clock.now(), 10, 10);
    serve(9); // 9 → 10
    assert.equal(l.limit, 10);
    serve(60 + 8); // the 60th at the ceiling also counts to the round
    assert.equal(l.limit, 10, 'still at the ceiling');
    serve(1);
    assert.equal(l.limit, 11);
    clock.advance(1);
    l.refused(clock.now(), 10, 10, 1000);
    assert.equal(l.limit, 10);
  });

  it('starts slow start again once the provider serves more at once than it held when it refused (it grew)', () => {
    const { l, clock, serve, changes } = limiter({ initial: 20 });
    l.refused(clock.now(), 10, 10);
    serve(9 + 60 + 9, undefined, 10); // to the ceiling, 60 answers at it, a round: the first probe
    assert.equal(l.limit, 11);
    serve(5, undefined, 11);
    assert.equal(l.phase, 'probing', 'one more than its edge: within what the endpoint\'s count may be ahead of the provider\'s');
    serve(12, undefined, 12);
    assert.equal(l.phase, 'slow-start');
    assert.ok(l.limit >= 21, `about doubled in one round: ${l.limit}`);
    assert.equal(changes.at(-1), 'slow-start');
    clock.advance(1);
    l.refused(clock.now(), 19, 20);
    assert.equal(l.limit, 20, 'refused past the old ceiling: back to what it held');
  });

  it('cuts gently when the time to first token climbs well above its floor', () => {
    const { l, clock, serve, changes } = limiter({ initial: 100 });
    l.refused(clock.now(), 100, 100); // out of slow start
    serve(200, 300);
    const before = l.limit;
    assert.ok(before > 90);
    for (let i = 0; i < 100 && l.limit === before; i++) {
      clock.advance(10);
      l.served(clock.now(), l.limit, 3000);
    }
    assert.equal(l.limit, Math.floor(before * 0.95));
    assert.equal(changes.at(-1), 'slow-first-token');
  });

  it('takes first tokens that merely vary for no queue (evenly 100–3100 ms; 80% at 100 ms and 20% at 10 s; 70% and 30% at 8 s): no cut', () => {
    const shapes: [string, (u: number) => number][] = [
      ['even', (u) => 100 + u * 3000],
      ['20% at 10 s', (u) => (u < 0.2 ? 10_000 : 100)],
      ['30% at 8 s', (u) => (u < 0.3 ? 8_000 : 100)],
    ];
    for (const [name, ttftOf] of shapes) {
      const { l, clock, serve, changes } = limiter({ initial: 60 });
      l.refused(clock.now(), 60, 60); // out of slow start
      let state = 7;
      for (let i = 0; i < 5000; i++) {
        clock.advance(25);
        state = (state * 1103515245 + 12345) % 2 ** 31;
        serve(1, ttftOf(state / 2 ** 31), l.limit);
      }
      assert.ok(!changes.includes('slow-first-token'), `${name}: cut ${changes.filter((c) => c === 'slow-first-token').length} times`);
    }
  });

  it('finds a queue that forms: first tokens from 200 ms to 3 s are cut for within 100 answers', () => {
    const { l, clock, serve, changes } = limiter({ initial: 60 });
    l.refused(clock.now(), 60, 60);
    serve(300, 200, l.limit);
    let n = 0;
    while (!changes.includes('slow-first-token') && n < 1000) {
      clock.advance(10);
      serve(1, 3000, l.limit);
      n++;
    }
    assert.ok(n <= 100, `cut after ${n} slow answers`);
  });

  it('opens for streams by doubling per round of first tokens: a stream\'s slot is not freed by its first token', () => {
    const { l, serve } = limiter({ initial: 32 });
    serve(32, 400); // the first round's first tokens, every slot still held by its stream
    assert.ok(l.limit >= 96, `${l.limit}: 64 new slots for the next round, twice the first`);
  });

  it('takes a refusal while its requests used under a quarter of the limit (one 429 at idle) for a gentle cut without a hold, and caps any hold at 10 s', () => {
    const { l, clock, serve } = limiter({ initial: 32 });
    l.refused(clock.now(), 0, 1, 86_400_000, 1); // a quota's 429 with a day's Retry-After, this request alone in flight
    assert.equal(l.limit, 28, '90% of itself, not the 1 the provider held');
    serve(28);
    assert.ok(l.limit > 28, 'and it grows at once: no hold');
    const { l: busy, clock: c2, serve: serve2 } = limiter({ initial: 32 });
    busy.refused(c2.now(), 32, 32, 86_400_000, 32); // refused at its limit, Retry-After a day
    const cut = busy.limit;
    c2.advance(9_999);
    serve2(200);
    assert.equal(busy.limit, cut, 'held');
    c2.advance(1);
    serve2(200);
    assert.ok(busy.limit > cut, 'but 10 s at most');
  });

  it('holds growth while a quota is close to spent or a server reports a queue', () => {
    const { l, clock, serve } = limiter({ initial: 50 });
    l.hold(1000);
    serve(100);
    assert.equal(l.limit, 50);
    clock.advance(1000);
    l.serverQueue(3, 5000);
    assert.equal(l.limit, 47);
    serve(100);
    assert.equal(l.limit, 47);
  });

  it('stays within its bounds, never grows while held or idle, never more than doubles at once, and cuts to 90% of what the provider held, or to it past the ceiling (property)', () => {
    const event = fc.oneof(
      fc.record({ serve: fc.integer({ min: 0, max: 400 }), ttft: fc.option(fc.integer({ min: 1, max: 5000 }), { nil: undefined }) }),
      fc.record({ refuse: fc.integer({ min: 0, max: 400 }), held: fc.integer({ min: 1, max: 400 }), retryAfter: fc.option(fc.integer({ min: 0, max: 30_000 }), { nil: undefined }), age: fc.integer({ min: 0, max: 500 }), inUse: fc.option(fc.integer({ min: 0, max: 400 }), { nil: undefined }) }),
      fc.record({ hold: fc.integer({ min: 0, max: 3000 }) }),
      fc.record({ queue: fc.integer({ min: 0, max: 20 }) }),
      fc.record({ wait: fc.integer({ min: 1, max: 2000 }) }),
    );
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 50 }), fc.integer({ min: 0, max: 500 }), fc.integer({ min: 0, max: 500 }), fc.array(event, { maxLength: 200 }), (min, span, start, events) => {
        const max = min + span;
        const clock = new ManualClock();
        const l = new AdaptiveLimit({ min, max, initial: start }, clock);
        let heldUntil = -Infinity;
        for (const e of events) {
          const before = l.limit;
          const [ceiling, edge] = [l.ceilingNow, l.edgeNow];
          if ('serve' in e) {
            l.served(clock.now(), e.serve, e.ttft);
            if (clock.now() < heldUntil || e.serve * 2 < before) assert.ok(l.limit <= before, 'grew while held or idle');
            assert.ok(l.limit <= Math.max(before * 2, before + 1), 'more than doubled in one answer');
          } else if ('refuse' in e) {
            l.refused(clock.now() - e.age, e.refuse, e.held, e.retryAfter, e.inUse);
            assert.ok(l.limit <= before, 'grew on a refusal');
            if ((e.inUse !== undefined && e.inUse * 4 < before) || e.refuse === 0) {
              // Refused while using under a quarter of the limit: 90% of itself at most, and no hold.
              if (l.limit !== before) assert.ok(l.limit <= Math.max(min, Math.floor(0.9 * before + 1e-9)), `gentle cut to ${l.limit} from ${before}`);
            } else {
              if (e.retryAfter) heldUntil = Math.max(heldUntil, clock.now() + Math.min(e.retryAfter, 10_000));
              // Refused past the ceiling, or holding as many as at its edge: back to what the provider held; otherwise 90% of it.
              const to = before > ceiling || e.refuse >= edge - (Number.isFinite(edge) ? Math.max(1, Math.floor(edge / 20)) : 0) ? e.held : Math.floor(0.9 * e.held + 1e-9);
              if (l.limit !== before) assert.ok(e.held <= before && l.limit <= Math.max(min, to), `cut to ${l.limit} from ${before}, above ${to} (held ${e.held}, ceiling ${ceiling}, edge ${edge})`);
            }
          } else if ('hold' in e) {
            l.hold(e.hold);
            heldUntil = Math.max(heldUntil, clock.now() + e.hold);
          } else if ('queue' in e) {
            l.serverQueue(e.queue, 1000);
            if (e.queue > 0) heldUntil = Math.max(heldUntil, clock.now() + 1000);
            assert.ok(l.limit <= before);
          } else clock.advance(e.wait);
          assert.ok(Number.isInteger(l.limit) && l.limit >= min && l.limit <= max, `limit ${l.limit} outside [${min}, ${max}]`);
        }
      }),
      { numRuns: 300 },
    );
  });
});
