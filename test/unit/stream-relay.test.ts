/**
 * The per-event path of a stream, piece by piece: the chunk source (bounded
 * read-ahead, abort ends a wait at once), the lazy stream-idle timer (one
 * timer, however many events), the hooks the layers hang on one body, and
 * the relay, which reads the usage, finish and terminator as events pass
 * and keeps none of them.
 */
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { AttemptTimers } from '../../sidecar/proxy/upstream/attempt-timers.js';
import { ChunkSource, HIGH_WATER_BYTES } from '../../sidecar/proxy/streams/chunk-source.js';
import { anthropic } from '../../sidecar/proxy/dialects/anthropic.js';
import { ollamaChat, ollamaGenerate } from '../../sidecar/proxy/dialects/ollama.js';
import { openai } from '../../sidecar/proxy/dialects/openai.js';
import { UpstreamStream } from '../../sidecar/proxy/streams/upstream-stream.js';
import { EventReader } from '../../sidecar/proxy/streams/stream-events.js';
import { bytesOf, nextOf, onStreamEnd, type StreamBody, type StreamEnd } from '../../sidecar/proxy/streams/stream-body.js';
import { ManualClock } from '../../sidecar/resilience/index.js';
import { sse, ndjson } from '../../sidecar/proxy/streams/stream-framing.js';

const response = () => new PassThrough() as PassThrough & IncomingMessage;
const tick = () => new Promise((r) => setImmediate(r));
const attemptOf = (clock: ManualClock) => new AttemptTimers(clock, new AbortController().signal);

describe('ChunkSource', () => {
  it('queues what arrives while nobody reads, pauses the response past the high-water mark, and resumes once drained', async () => {
    const res = response();
    const source = new ChunkSource(res, attemptOf(new ManualClock()));
    const chunk = Buffer.alloc(16 * 1024, 'a');
    for (let i = 0; i < 6; i++) res.write(chunk);
    await tick();
    assert.equal(res.isPaused(), true, `paused after ${6 * chunk.length} bytes (high water ${HIGH_WATER_BYTES})`);
    let read = 0;
    while (res.isPaused()) read += (await source.next())!.length;
    assert.ok(read >= HIGH_WATER_BYTES, 'resumed only once the queue was drained');
    res.end();
    let rest: Buffer | null;
    while ((rest = await source.next())) read += rest.length;
    assert.equal(read, 6 * chunk.length, 'every byte came through, in order, then the end');
  });

  it('ends a waiting read at once when the attempt is aborted, and every later one, queued chunks or not', async () => {
    const res = response();
    const attempt = attemptOf(new ManualClock());
    const source = new ChunkSource(res, attempt);
    const waiting = source.next();
    attempt.abort();
    await assert.rejects(waiting, /attempt aborted/);
    res.write('late');
    await tick();
    await assert.rejects(source.next(), /attempt aborted/);
  });

  it('rejects when the body dies before its end', async () => {
    const res = response();
    const source = new ChunkSource(res, attemptOf(new ManualClock()));
    res.write('data: {}\n\n');
    assert.equal((await source.next())!.toString(), 'data: {}\n\n');
    const waiting = source.next();
    res.destroy();
    await assert.rejects(waiting, /before its body was complete/);
  });
});

describe('the stream-idle timer', () => {
  it('expires only after its timeout with no touch, and touches set no timers', () => {
    const clock = new ManualClock();
    let timers = 0;
    const setTimer = clock.setTimer.bind(clock);
    clock.setTimer = (fn, ms) => (timers++, setTimer(fn, ms));
    const attempt = attemptOf(clock);
    attempt.armIdle(1000);
    for (let i = 0; i < 100; i++) {
      clock.advance(100);
      attempt.touch();
    }
    assert.equal(attempt.expired, undefined, 'alive: touched every 100 ms for 10 s');
    assert.ok(timers <= 12, `${timers} timers for 100 touches: about one per idle period, re-armed only when due`);
    clock.advance(999);
    assert.equal(attempt.expired, undefined);
    clock.advance(1);
    assert.equal(attempt.expired, 'stream-idle');
    assert.equal(attempt.aborted, true);
  });
});

describe("an attempt's abort", () => {
  it('calls each hook once, whoever aborts (a timer or the app), and a hook hung on after the abort at once', () => {
    const clock = new ManualClock();
    const app = new AbortController();
    const attempt = new AttemptTimers(clock, app.signal);
    const calls: string[] = [];
    attempt.onAbort(() => calls.push('request'));
    attempt.onAbort(() => calls.push('reader'));
    attempt.arm('first-byte', 100);
    app.abort();
    clock.advance(100);
    attempt.abort();
    assert.deepEqual(calls, ['request', 'reader'], 'once each, in order');
    assert.equal(attempt.expired, undefined, 'the app left first: no timeout is named, and the timer was not left to fire');
    attempt.onAbort(() => calls.push('late'));
    assert.deepEqual(calls, ['request', 'reader', 'late']);
  });

  it('names the timer that fired first', () => {
    const clock = new ManualClock();
    const attempt = attemptOf(clock);
    let aborted = 0;
    attempt.onAbort(() => aborted++);
    attempt.arm('attempt', 80);
    attempt.arm('first-byte', 50);
    clock.advance(100);
    assert.equal(attempt.expired, 'first-byte');
    assert.equal(aborted, 1);
  });
});

describe('the relay (UpstreamStream)', () => {
  /** Everything a stream gives the app, and how it ends. */
  async function drain(stream: UpstreamStream): Promise<{ bytes: Buffer; end: StreamEnd }> {
    const out: Buffer[] = [];
    for (;;) {
      const next = await nextOf(stream);
      if (next.kind !== 'chunk') return { bytes: Buffer.concat(out), end: next };
      out.push(Buffer.from(bytesOf(next)));
    }
  }

  it('relays a stream cut into chunks anywhere, byte for byte, and ends it with the usage its events reported (property)', async () => {
    const count = fc.integer({ min: 1, max: 1_000_000 });
    await fc.assert(
      fc.asyncProperty(fc.array(fc.string({ unit: 'binary' }), { maxLength: 40 }), count, count, fc.array(fc.nat(), { maxLength: 12 }), fc.boolean(), fc.boolean(), async (texts, input, output, cuts, cutShort, pinged) => {
        for (const dialect of [openai, anthropic, ollamaChat, ollamaGenerate]) {
          const { start, content, end } = dialect.composeStream!('m', texts, { input, output });
          // An SSE keep-alive between the finish and the terminator.
          if (pinged && (dialect === anthropic || dialect === openai)) end.splice(-1, 0, ': keep-alive\n\n');
          const whole = Buffer.from([...start, ...content, ...end].join(''));
          // Cut short: without its last event (the terminator; Ollama's also holds the counts).
          const sent = cutShort ? whole.subarray(0, whole.length - Buffer.byteLength(end.at(-1)!)) : whole;
          const res = response();
          const attempt = attemptOf(new ManualClock());
          const reader = new EventReader(dialect === anthropic || dialect === openai ? sse : ndjson, dialect);
          const stream = new UpstreamStream(res, new ChunkSource(res, attempt), reader, [], attempt, dialect, { idleMs: 60_000 });
          const offsets = [...new Set(cuts.map((c) => c % (sent.length + 1)))].sort((a, b) => a - b);
          [0, ...offsets].forEach((from, i) => res.write(sent.subarray(from, offsets[i] ?? sent.length)));
          res.end();
          const relayed = await drain(stream);
          const ollama = dialect !== anthropic && dialect !== openai;
          if (cutShort && ollama) {
            assert.equal(relayed.end.kind, 'failed', 'an Ollama stream without its done line was cut');
            continue;
          }
          // A stream cut after its finish gets the terminator it lacked: the app reads the whole stream.
          assert.equal(relayed.bytes.toString(), whole.toString());
          assert.deepEqual(relayed.end, { kind: 'complete', usage: { input, output } });
        }
      }),
      { numRuns: 150 },
    );
  });

  it('ends a stream whose every choice finished complete, with the terminator it lacked, when it then ends or breaks; one still going is cut', async () => {
    const choice = (index: number, delta: object, finish: string | null = null) => ({ index, delta, finish_reason: finish });
    const chunk = (...choices: object[]) => `data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', created: 1, model: 'm', choices })}\n\n`;
    const run = async (events: string[], how: 'end' | 'break', expectedChoices = 1) => {
      const res = response();
      const attempt = attemptOf(new ManualClock());
      const stream = new UpstreamStream(res, new ChunkSource(res, attempt), new EventReader(sse, openai), [], attempt, openai, { idleMs: 60_000, expectedChoices });
      for (const event of events) res.write(event);
      if (how === 'end') res.end();
      else setImmediate(() => res.destroy(new Error('socket hang up')));
      return drain(stream);
    };
    const hi = chunk(choice(0, { content: 'hi' }));
    const done = chunk(choice(0, {}, 'stop'));
    for (const how of ['end', 'break'] as const) {
      const finished = await run([hi, done], how);
      assert.equal(finished.end.kind, 'complete', how);
      assert.equal(finished.bytes.toString(), hi + done + 'data: [DONE]\n\n', `${how}: the terminator the app expects is added`);
      const going = await run([hi, done, chunk(choice(0, { content: ' more' }))], how);
      assert.equal(going.end.kind, 'failed', `${how}: content after the finish: the finish did not end the answer`);
      // n: 2, as the request asked: each choice must finish, whether or not it has shown up yet.
      const one = await run([chunk(choice(0, { content: 'a' })), chunk(choice(0, {}, 'stop'))], how, 2);
      assert.equal(one.end.kind, 'failed', `${how}: choice 1 never finished`);
      const both = await run([chunk(choice(0, { content: 'a' }), choice(1, { content: 'b' })), chunk(choice(1, {}, 'stop')), chunk(choice(0, {}, 'length'))], how, 2);
      assert.equal(both.end.kind, 'complete', `${how}: both choices finished`);
    }
  });

  it('relays nothing after the terminator, and reads a terminator only in a parsed event', async () => {
    const res = response();
    const attempt = attemptOf(new ManualClock());
    const stream = new UpstreamStream(res, new ChunkSource(res, attempt), new EventReader(sse, openai), [], attempt, openai, { idleMs: 60_000 });
    const mention = `data: ${JSON.stringify({ choices: [{ index: 0, delta: { content: 'data: [DONE]\n\n' }, finish_reason: null }] })}\n\n`;
    res.write(mention);
    res.write('data:[DONE]\n\ndata: {"choices":[{"index":0,"delta":{"content":"late"}}]}\n\n');
    res.end();
    const relayed = await drain(stream);
    assert.equal(relayed.bytes.toString(), mention + 'data:[DONE]\n\n');
    assert.equal(relayed.end.kind, 'complete');
  });
});
