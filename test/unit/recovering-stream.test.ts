/**
 * The recovering stream (recovering-stream.ts): it relays a stream's chunks
 * as they are, notes the content the app was sent, and when the stream
 * breaks asks for a new run of the chain with what the app has and where it
 * broke; the new stream starts at new content already (its attempt's seam
 * saw to that: resumed-stream.test.ts), and the app reads one answer with a
 * comment before the terminator that says it was recovered.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { FailureClass } from '../../api/index.js';
import { anthropic } from '../../sidecar/proxy/dialects/anthropic.js';
import type { Dialect } from '../../sidecar/proxy/dialects/dialect.js';
import { ollamaChat } from '../../sidecar/proxy/dialects/ollama.js';
import { openai } from '../../sidecar/proxy/dialects/openai.js';
import { RecoveringStream, type NextStream, type RecoveryResult, type RecoveryStrategy } from '../../sidecar/proxy/streams/recovering-stream.js';
import { ResumedStream } from '../../sidecar/proxy/streams/resumed-stream.js';
import { bytesOf, chunkOf, nextOf, type StreamBody, type StreamChunk, type StreamEnd } from '../../sidecar/proxy/streams/stream-body.js';
import { EventReader } from '../../sidecar/proxy/streams/stream-events.js';
import { ContinuationSeam } from '../../sidecar/resilience/continuation-seam.js';
import { type DeliveredContent, MAX_RECOVERABLE_CHARS } from '../../sidecar/resilience/stream-verifier.js';
import { sse, ndjson, type StreamFraming } from '../../sidecar/proxy/streams/stream-framing.js';

const event = (content: string) => `data: ${JSON.stringify({ choices: [{ index: 0, delta: { content } }] })}\n\n`;
const DONE = 'data: [DONE]\n\n';

/** A stream that sends `pieces` (each a chunk of the events it holds, read as `dialect`'s), then ends with `end`. */
function scripted(pieces: string[], end: StreamEnd, dialect: Dialect = openai, framing: StreamFraming = sse): StreamBody & { cancels: number } {
  const reader = new EventReader(framing, dialect);
  const queue = pieces.map((piece) => chunkOf(reader.push(Buffer.from(piece))));
  const body = { cancels: 0, poll: () => queue.shift() ?? end, whenReady: (wake: () => void) => queueMicrotask(wake), cancel: () => void body.cancels++ };
  return body;
}

const stream = (body: StreamBody, strategy: RecoveryStrategy = 'regenerate', upstream = 'primary'): NextStream => ({ kind: 'stream', body, upstream, strategy });

async function drain(body: StreamBody): Promise<{ text: string; end: StreamEnd; chunks: StreamChunk[] }> {
  let text = '';
  const chunks: StreamChunk[] = [];
  for (;;) {
    const next = await nextOf(body);
    if (next.kind !== 'chunk') return { text, end: next, chunks };
    chunks.push(next);
    text += bytesOf(next).toString('utf8');
  }
}

const cut: StreamEnd = { kind: 'failed', failure: 'reset', detail: 'stream broken' };

/** Runs a stream that sends `first` then breaks, recovered by `next` (given what was delivered, and the break); what the app read, the recoveries and the asks. */
async function recover(first: StreamBody, next: (delivered: DeliveredContent, broke: { upstream: string; failure: FailureClass }) => NextStream | undefined, framing: StreamFraming = sse, maxRecoveries = 1) {
  const results: [RecoveryResult, RecoveryStrategy][] = [];
  const asked: { delivered: string; text: string | undefined; broke: { upstream: string; failure: FailureClass } }[] = [];
  const recovering = new RecoveringStream(first, 'primary', {
    framing,
    maxRecoveries,
    again: async (delivered, broke) => (asked.push({ delivered: delivered.all, text: delivered.text?.text, broke }), next(delivered, broke)),
    onRecovery: (result, strategy) => results.push([result, strategy]),
  });
  return { ...(await drain(recovering)), results, asked };
}

describe('recovering stream', () => {
  it('recovers a stream that sent little, and keeps no copy past MAX_RECOVERABLE_CHARS, so a longer one is not recovered', async () => {
    for (const [size, recovered] of [[1000, true], [MAX_RECOVERABLE_CHARS + 1, false]] as const) {
      const sent = 'x'.repeat(size);
      const run = await recover(scripted([event(sent)], cut), () => stream(scripted([event('rest'), DONE], { kind: 'complete' })));
      assert.equal(run.asked.length, recovered ? 1 : 0, `${size} characters sent`);
      assert.equal(run.end.kind, recovered ? 'complete' : 'failed');
      assert.deepEqual(run.results, [[recovered ? 'recovered' : 'refused', recovered ? 'regenerate' : 'none']]);
    }
  });

  const anthropicEvent = (type: string, data: object = {}) => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
  const anthropicText = (text: string) => anthropicEvent('content_block_delta', { index: 0, delta: { type: 'text_delta', text } });
  const anthropicOpening = [anthropicEvent('message_start', { message: { id: 'm', content: [] } }), anthropicEvent('content_block_start', { index: 0, content_block: { type: 'text', text: '' } })];
  const anthropicClosing = [anthropicEvent('content_block_stop', { index: 0 }), anthropicEvent('message_delta', { delta: { stop_reason: 'end_turn' }, usage: { output_tokens: 7 } }), anthropicEvent('message_stop')];

  it('asks for a new run with what the app has and where it broke, and relays the continuation it gets as one answer, said recovered before the terminator', async () => {
    const run = await recover(scripted([...anthropicOpening, anthropicText('Hello'), anthropicText(' wor')], cut, anthropic), (delivered) => {
      const { text, channel } = delivered.text!;
      // The attempt passes the continuation through its seam: what reaches the recovering stream starts at new content.
      const body = new ResumedStream(scripted([...anthropicOpening, anthropicText('ld!'), ...anthropicClosing], { kind: 'complete' }, anthropic), new ContinuationSeam(text, text.length, channel), anthropic, sse);
      return stream(body, 'continuation', 'secondary');
    });
    assert.deepEqual(
      run.asked.map(({ text, broke }) => ({ text, broke })),
      [{ text: 'Hello wor', broke: { upstream: 'primary', failure: 'reset' } }],
    );
    assert.deepEqual(run.results, [['recovered', 'continuation']]);
    assert.equal(run.end.kind, 'complete');
    assert.equal(run.text.split('event: message_start').length - 1, 1, 'one message_start');
    assert.equal(run.text.split('event: content_block_start').length - 1, 1, 'one content_block_start');
    assert.ok(run.text.includes('"text":"ld!"') && run.text.includes('event: message_delta') && run.text.endsWith(anthropicEvent('message_stop')));
    assert.match(run.text, /: breakwater recovered this stream after: stream broken\n\nevent: message_stop/);
  });

  it("notes the block marks sent after the content (a block's stop), so a new stream must repeat them and the text is not continued", async () => {
    let trailing: string[] = [];
    const run = await recover(scripted([...anthropicOpening, anthropicText('Done.'), anthropicEvent('content_block_stop', { index: 0 })], cut, anthropic), (delivered) => {
      trailing = [...delivered.trailing];
      return undefined;
    });
    assert.deepEqual(trailing, ['stop:0']);
    assert.deepEqual(run.asked.map((a) => a.text), [undefined], 'a closed block is regenerated, not continued');
  });

  it('ends with the original failure, said diverged, when the new run found no stream that continues the answer', async () => {
    const run = await recover(scripted([...anthropicOpening, anthropicText('Hello\n')], cut, anthropic), () => ({ kind: 'failed', failure: 'diverged' }));
    assert.deepEqual(run.results, [['diverged', 'none']]);
    assert.deepEqual(run.end, { kind: 'failed', failure: 'reset', detail: 'stream broken; a new attempt diverged from the content already sent' });
    assert.equal(run.text, [...anthropicOpening, anthropicText('Hello\n')].join(''), 'the app has what it had, and nothing more');
  });

  it('reports a recovery with no new stream as failed, strategy none, and a regenerated one as regenerate', async () => {
    const none = await recover(scripted([event('abc')], cut), () => undefined);
    assert.deepEqual(none.results, [['failed', 'none']]);
    assert.deepEqual(none.end, cut);
    const failing = await recover(scripted([event('abc')], cut), () => ({ kind: 'failed', failure: 'timeout' }));
    assert.deepEqual(failing.results, [['failed', 'none']]);
    assert.deepEqual(failing.end, cut, 'the original failure');
    const regenerated = await recover(scripted([event('abc')], cut), () => stream(scripted([event('d'), DONE], { kind: 'complete' })));
    assert.deepEqual(regenerated.results, [['recovered', 'regenerate']]);
    assert.equal(regenerated.text, event('abc') + event('d') + ': breakwater recovered this stream after: stream broken\n\n' + DONE);
  });

  it('recovers an Ollama NDJSON stream without writing an SSE comment into it', async () => {
    const line = (content: string, done = false) => JSON.stringify({ model: 'm', message: { role: 'assistant', content }, done }) + '\n';
    const run = await recover(scripted([line('Hel')], cut, ollamaChat, ndjson), () => stream(scripted([line('lo'), line('', true)], { kind: 'complete' }, ollamaChat, ndjson), 'continuation'), ndjson);
    assert.deepEqual(run.results, [['recovered', 'continuation']]);
    assert.deepEqual(run.asked.map((a) => a.text), ['Hel']);
    assert.equal(run.text, line('Hel') + line('lo') + line('', true));
  });

  it('recovers at most maxRecoveries times, each from the stream that broke: a third break ends the stream with its failure', async () => {
    // Each new stream (from another tier each time) adds one piece and breaks again.
    let n = 0;
    const run = await recover(scripted([event('a')], cut), () => (n++, stream(scripted([event(String(n))], cut), 'regenerate', `tier${n}`)), sse, 2);
    assert.deepEqual(
      run.asked.map(({ delivered, broke }) => [delivered, broke.upstream]),
      [
        ['\u0000text\u0000a', 'primary'],
        ['\u0000text\u0000a1', 'tier1'],
      ],
      'what the app had each time, and the upstream whose stream broke',
    );
    assert.deepEqual(run.end, cut, 'the last break ends the stream');
    assert.deepEqual([...run.text.matchAll(/"content":"([^"]*)"/g)].map((m) => m[1]), ['a', '1', '2'], 'each recovery relayed its new text');
    assert.ok(!run.text.includes('breakwater recovered'), 'no terminator came, so no comment either');
  });

  it('counts each recovery once: one whose new stream broke again as failed, with its strategy', async () => {
    let n = 0;
    const run = await recover(scripted([event('a')], cut), () => (n++, stream(scripted([event(String(n))], cut), 'continuation', `tier${n}`)), sse, 2);
    assert.deepEqual(run.results, [
      ['failed', 'continuation'],
      ['failed', 'continuation'],
    ]);
  });

  it('does not try to recover a stream that broke before any content reached the app', async () => {
    const run = await recover(scripted([': keep-alive\n\n'], cut), () => stream(scripted([event('x')], { kind: 'complete' })));
    assert.equal(run.asked.length, 0);
    assert.deepEqual(run.results, []);
    assert.deepEqual(run.end, cut);
  });

  it('relays every chunk as it came, and once a stream carries what it cannot vouch for (a second choice), refuses to recover it', async () => {
    const twoChoices = `data: ${JSON.stringify({ choices: [{ index: 0, delta: { content: 'a' } }, { index: 1, delta: { content: 'b' } }] })}\n\n`;
    const toolCall = `data: ${JSON.stringify({ choices: [{ index: 0, delta: { tool_calls: [{ index: 0, id: 'call_1', type: 'function', function: { name: 'f', arguments: '{' } }] } }] })}\n\n`;
    const pieces = [event('hi') + toolCall, twoChoices, event('après')];
    const first = scripted(pieces, cut);
    const sent: StreamChunk[] = [];
    const upstream: StreamBody = {
      poll: () => {
        const next = first.poll();
        if (next?.kind === 'chunk') sent.push(next);
        return next;
      },
      whenReady: (wake) => queueMicrotask(wake),
      cancel: () => first.cancel(),
    };
    const results: RecoveryResult[] = [];
    let asked = 0;
    const recovering = new RecoveringStream(upstream, 'primary', { framing: sse, maxRecoveries: 1, again: async () => (asked++, undefined), onRecovery: (r) => results.push(r) });
    const run = await drain(recovering);
    assert.equal(run.text, pieces.join(''));
    run.chunks.forEach((chunk, i) => assert.equal(chunk, sent[i], 'a chunk is passed on as the same chunk'));
    assert.equal(asked, 0);
    assert.deepEqual(results, ['refused']);
    assert.deepEqual(run.end, cut);
  });

  it('wakes its reader once a recovery is over, and cancels a new stream that comes after the stream was given up', async () => {
    let give!: (next: NextStream) => void;
    const again = new Promise<NextStream>((resolve) => (give = resolve));
    const first = scripted([event('hi')], cut);
    const recovering = new RecoveringStream(first, 'primary', { framing: sse, maxRecoveries: 1, again: () => again, onRecovery: () => {} });
    assert.equal(recovering.poll()?.kind, 'chunk');
    assert.equal(recovering.poll(), undefined, 'the break starts a recovery: nothing to give until it is over');
    assert.equal(first.cancels, 1, 'the broken stream is given up at once');
    let woken = 0;
    recovering.whenReady(() => woken++);
    await new Promise((r) => setImmediate(r));
    assert.equal(woken, 0, 'no wake while the recovery is under way');
    recovering.cancel();
    assert.deepEqual(recovering.poll(), { kind: 'cancelled' });
    let cancels = 0;
    give(stream({ poll: () => undefined, whenReady: () => {}, cancel: () => cancels++ }));
    await new Promise((r) => setImmediate(r));
    assert.equal(cancels, 1, 'the late stream has no reader: its connection is closed');
    assert.equal(woken, 1, 'the reader is woken once the recovery is over');
    assert.deepEqual(recovering.poll(), { kind: 'cancelled' });
  });
});
