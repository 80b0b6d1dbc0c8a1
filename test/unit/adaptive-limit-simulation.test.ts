/** The adaptive limit against simulated providers on the manual clock: one whose capacity moves, and small ones (properties). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { AdaptiveLimit } from '../../sidecar/resilience/adaptive-limit.js';
import { ManualClock } from '../../sidecar/resilience/clock.js';

describe('adaptive limit against a simulated provider', () => {
  it('at small limits keeps a provider of capacity 2–30 full, with at most one probe per 60 good answers (property, simulation on the manual clock)', () => {
    // Callers always waiting; the provider takes `capacity` streams of `streamMs` at once and refuses the rest with
    // Retry-After 1 s (the refused attempt keeps its slot and tries again). Counted after the first 30 s.
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 30 }), fc.integer({ min: 300, max: 3000 }), fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1, max: 2 ** 30 }), (capacity, streamMs, initial, seed) => {
        // Stream lengths vary by ±25% (a seeded generator), so streams do not end in lockstep.
        let state = seed;
        const jitter = () => ((state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 0.5 + 0.75;
        const clock = new ManualClock();
        const l = new AdaptiveLimit({ min: 1, max: 1000, initial }, clock);
        let ends: number[] = [];
        let retrying: number[] = [];
        const counted = { attempts: 0, refused: 0, served: 0, inFlight: 0, ticks: 0 };
        const attempt = (count: boolean) => {
          if (count) counted.attempts++;
          if (ends.length >= capacity) {
            if (count) counted.refused++;
            l.refused(clock.now(), ends.length, ends.length, 1000);
            retrying.push(clock.now() + 1000);
            return;
          }
          ends.push(clock.now() + Math.round(streamMs * jitter()));
          if (count) counted.served++;
          l.served(clock.now(), ends.length, 40);
        };
        for (let t = 0; t < 150_000; t += 10) {
          clock.advance(10);
          ends = ends.filter((end) => end > clock.now());
          const due = retrying.filter((at) => at <= clock.now()).length;
          retrying = retrying.filter((at) => at > clock.now());
          const count = t >= 30_000;
          for (let i = 0; i < due; i++) attempt(count);
          while (ends.length + retrying.length < l.limit) attempt(count);
          if (count) (counted.inFlight += ends.length), counted.ticks++;
        }
        const held = counted.inFlight / counted.ticks;
        // One probe per 60 good answers at most, each refused once, or twice when the refused attempt's retry finds
        // the provider still full (no stream of the few in flight ended within the Retry-After).
        assert.ok(counted.refused <= 2 * (1 + counted.served / 60), `${counted.refused} refusals for ${counted.served} served`);
        assert.ok(held >= 0.95 * capacity, `held ${held.toFixed(2)} of ${capacity}`);
      }),
      { numRuns: Number(process.env.ADAPTIVE_RUNS ?? 40) },
    );
  });

  it('follows a provider whose capacity moves (50, 10, 200) with few refusals (simulation on the manual clock)', () => {
    // A provider that takes `capacity` streams at once, each 2 s long, and refuses the rest with 429 and
    // Retry-After 1 s; 300 callers keep asking. Goodput and refusals are counted per phase, after its first 20 s.
    const clock = new ManualClock();
    const l = new AdaptiveLimit({ min: 1, max: 1000, initial: 32 }, clock);
    const ends: number[] = [];
    let retrying: number[] = [];
    const phases = [50, 10, 200];
    for (const capacity of phases) {
      let served = 0;
      let attempts = 0;
      let refusals = 0;
      for (let t = 0; t < 60_000; t += 10) {
        clock.advance(10);
        while (ends.length > 0 && ends[0]! <= clock.now()) ends.shift();
        const due = retrying.filter((at) => at <= clock.now()).length;
        retrying = retrying.filter((at) => at > clock.now());
        // A slot is held by a stream at the provider or an attempt waiting to retry.
        let free = l.limit - ends.length - retrying.length;
        for (let i = 0; i < due + Math.max(0, free - due) && free > 0; i++, free--) {
          const counted = t >= 20_000;
          if (counted) attempts++;
          if (ends.length >= capacity) {
            if (counted) refusals++;
            l.refused(clock.now(), ends.length, ends.length, 1000); // at a limit of ends.length, no more would have been sent
            retrying.push(clock.now() + 1000);
            continue;
          }
          ends.push(clock.now() + 2000);
          ends.sort((a, b) => a - b);
          l.served(clock.now(), ends.length, 40);
          if (counted) served++;
        }
      }
      const goodput = served / 40; // streams started a second over the last 40 s; capacity / 2 s is the most
      assert.ok(goodput >= 0.9 * (capacity / 2), `capacity ${capacity}: ${goodput.toFixed(1)} streams/s of ${capacity / 2}`);
      assert.ok(refusals <= 0.02 * attempts, `capacity ${capacity}: ${refusals} refusals of ${attempts} attempts`);
    }
  });
});
