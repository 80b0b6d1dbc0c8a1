import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { anthropic } from '../../sidecar/proxy/dialects/anthropic.js';
import { ollamaChat } from '../../sidecar/proxy/dialects/ollama.js';
import { openai } from '../../sidecar/proxy/dialects/openai.js';
import { MAX_RECOVERABLE_CHARS, RecoveringStream, type NextStream, type RecoveryDeps, type RecoveryResult, type RecoveryStrategy } from '../../sidecar/proxy/recovering-stream.js';
import { nextOf, type StreamBody, type StreamEnd } from '../../sidecar/proxy/stream-body.js';

const event = (content: string) => `data: ${JSON.stringify({ choices: [{ index: 0, delta: { content } }] })}\n\n`;

/** A stream that sends `pieces`, then ends with `end`. */
function scripted(pieces: string[], end: StreamEnd): StreamBody {
  const queue = [...pieces];
  return { poll: () => (queue.length ? Buffer.from(queue.shift()!) : end), ready: async () => {}, cancel() {} };
}

async function drain(body: StreamBody): Promise<{ text: string; end: StreamEnd }> {
  let text = '';
  for (;;) {
    const next = await nextOf(body);
    if (!Buffer.isBuffer(next)) return { text, end: next };
    text += next.toString('utf8');
  }
}

const cut: StreamEnd = { kind: 'failed', failure: 'reset', detail: 'stream broken' };

describe('recovering stream', () => {
  it('recovers a stream that sent little, and keeps no copy past MAX_RECOVERABLE_CHARS, so a longer one is not recovered', async () => {
    for (const [size, recovered] of [[1000, true], [MAX_RECOVERABLE_CHARS + 1, false]] as const) {
      const sent = 'x'.repeat(size);
      let asked = 0;
      const results: RecoveryResult[] = [];
      const stream = new RecoveringStream(scripted([event(sent)], cut), {
        dialect: openai,
        framing: 'sse',
        maxRecoveries: 1,
        again: async () => (asked++, { body: scripted([event(sent + 'rest'), 'data: [DONE]\n\n'], { kind: 'complete' }) }),
        onRecovery: (r) => results.push(r),
      });
      const { end } = await drain(stream);
      assert.equal(asked, recovered ? 1 : 0, `${size} characters sent`);
      assert.equal(end.kind, recovered ? 'complete' : 'failed');
      assert.deepEqual(results, [recovered ? 'recovered' : 'refused']);
    }
  });

  const anthropicEvent = (type: string, data: object = {}) => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
  const anthropicText = (text: string) => anthropicEvent('content_block_delta', { index: 0, delta: { type: 'text_delta', text } });
  const anthropicOpening = [anthropicEvent('message_start', { message: { id: 'm', content: [] } }), anthropicEvent('content_block_start', { index: 0, content_block: { type: 'text', text: '' } })];
  const anthropicClosing = [anthropicEvent('content_block_stop', { index: 0 }), anthropicEvent('message_delta', { delta: { stop_reason: 'end_turn' }, usage: { output_tokens: 7 } }), anthropicEvent('message_stop')];

  /** Runs a stream that sends `first` then breaks, recovered by `next` (given the text delivered); what the app read, and the recoveries. */
  async function recover(dialect: RecoveryDeps['dialect'], first: string[], next: (delivered: string) => NextStream | undefined, framing: 'sse' | 'ndjson' = 'sse') {
    const results: [RecoveryResult, RecoveryStrategy][] = [];
    const asked: string[] = [];
    const stream = new RecoveringStream(scripted(first, cut), {
      dialect,
      framing,
      maxRecoveries: 1,
      again: async (delivered) => (asked.push(delivered), next(delivered)),
      onRecovery: (result, strategy) => results.push([result, strategy]),
    });
    return { ...(await drain(stream)), results, asked };
  }

  it('relays a continuation after the text it carried, dropping its opening events and keeping its closing ones', async () => {
    const run = await recover(anthropic, [...anthropicOpening, anthropicText('Hello'), anthropicText(' wor')], (delivered) => ({
      body: scripted([...anthropicOpening, anthropicText('ld!'), ...anthropicClosing], { kind: 'complete' }),
      continues: delivered.length,
    }));
    assert.deepEqual(run.asked, ['Hello wor']);
    assert.deepEqual(run.results, [['recovered', 'continuation']]);
    assert.equal(run.end.kind, 'complete');
    assert.equal(run.text.split('event: message_start').length - 1, 1, 'one message_start');
    assert.equal(run.text.split('event: content_block_start').length - 1, 1, 'one content_block_start');
    assert.ok(run.text.includes('"text":"ld!"') && run.text.includes('event: message_delta') && run.text.endsWith(anthropicEvent('message_stop')));
    assert.match(run.text, /: breakwater recovered this stream after: stream broken\n\nevent: message_stop/);
  });

  it('verifies the part of the delivered text a continuation did not carry (whitespace Anthropic refuses), and drops it', async () => {
    const run = await recover(anthropic, [...anthropicOpening, anthropicText('Hello ')], () => ({
      body: scripted([...anthropicOpening, anthropicText(' world'), ...anthropicClosing], { kind: 'complete' }),
      continues: 'Hello'.length,
    }));
    assert.deepEqual(run.results, [['recovered', 'continuation']]);
    const texts = [...run.text.matchAll(/"text":"([^"]*)"/g)].map((m) => m[1]);
    assert.deepEqual(texts, ['', 'Hello ', 'world'], 'the opening block, the text before the break, the continuation past the space');
  });

  it('closes a continuation that adds no text with its closing events (the answer was all but done)', async () => {
    const run = await recover(anthropic, [...anthropicOpening, anthropicText('Done.')], (delivered) => ({
      body: scripted([...anthropicOpening, ...anthropicClosing], { kind: 'complete' }),
      continues: delivered.length,
    }));
    assert.deepEqual(run.results, [['recovered', 'continuation']]);
    assert.ok(run.text.endsWith(anthropicClosing.join('').replace(anthropicEvent('message_stop'), '') + ': breakwater recovered this stream after: stream broken\n\n' + anthropicEvent('message_stop')));
  });

  it('ends a continuation that contradicts the whitespace it did not carry as diverged, with the original failure', async () => {
    const run = await recover(anthropic, [...anthropicOpening, anthropicText('Hello\n')], () => ({
      body: scripted([anthropicText(' world'), ...anthropicClosing], { kind: 'complete' }),
      continues: 'Hello'.length,
    }));
    assert.deepEqual(run.results, [['diverged', 'continuation']]);
    assert.equal(run.end.kind, 'failed');
    assert.ok(!run.text.includes('world'));
  });

  it('reports a recovery with no new stream as failed, strategy none, and a regenerated one as regenerate', async () => {
    const none = await recover(openai, [event('abc')], () => undefined);
    assert.deepEqual(none.results, [['failed', 'none']]);
    assert.equal(none.end.kind, 'failed');
    const regenerated = await recover(openai, [event('abc')], () => ({ body: scripted([event('a'), event('bcd'), 'data: [DONE]\n\n'], { kind: 'complete' }) }));
    assert.deepEqual(regenerated.results, [['recovered', 'regenerate']]);
    assert.ok(regenerated.text.includes('"content":"d"'));
  });

  it('recovers an Ollama NDJSON stream without writing an SSE comment into it', async () => {
    const line = (content: string, done = false) => JSON.stringify({ model: 'm', message: { role: 'assistant', content }, done }) + '\n';
    const run = await recover(ollamaChat, [line('Hel')], (delivered) => ({ body: scripted([line('lo'), line('', true)], { kind: 'complete' }), continues: delivered.length }), 'ndjson');
    assert.deepEqual(run.results, [['recovered', 'continuation']]);
    assert.equal(run.text, line('Hel') + line('lo') + line('', true));
  });

  it('recovers at most maxRecoveries times: a third break ends the stream with its failure', async () => {
    const results: RecoveryResult[] = [];
    let asked = 0;
    // Each new stream verifies what was sent, adds one piece, and breaks again.
    const stream = new RecoveringStream(scripted([event('a')], cut), {
      dialect: openai,
      framing: 'sse',
      maxRecoveries: 2,
      again: async (delivered) => (asked++, { body: scripted([event(delivered + String(asked))], cut) }),
      onRecovery: (r) => results.push(r),
    });
    const { text, end } = await drain(stream);
    assert.equal(asked, 2);
    assert.deepEqual(results, ['failed', 'failed']);
    assert.equal(end.kind, 'failed');
    assert.deepEqual([...text.matchAll(/"content":"([^"]*)"/g)].map((m) => m[1]), ['a', '1', '2'], 'each recovery relayed only its new text');
  });

  it('relays every byte of a stream it stops reading (tool calls), the half event it held back included, and the bytes as they came', async () => {
    const toolCall = `data: ${JSON.stringify({ choices: [{ index: 0, delta: { tool_calls: [{ index: 0, function: { arguments: '{' } }] } }] })}\n\n`;
    const later = event('après');
    const chunks = [event('hi'), toolCall + later.slice(0, 10), later.slice(10), event('more')];
    const sent = chunks.map((c) => Buffer.from(c));
    const first = sent[0]!;
    const upstream: StreamBody = { poll: () => sent.shift() ?? { kind: 'complete' }, ready: async () => {}, cancel() {} };
    const stream = new RecoveringStream(upstream, { dialect: openai, framing: 'sse', maxRecoveries: 1, again: async () => undefined, onRecovery: () => {} });
    const read: Buffer[] = [];
    for (let next = await nextOf(stream); Buffer.isBuffer(next); next = await nextOf(stream)) read.push(next);
    assert.equal(Buffer.concat(read).toString(), chunks.join(''));
    assert.equal(read[0], first, 'a chunk of whole events is passed on as the same bytes');
  });

  it('waits for a new stream on one promise, and cancels a new stream that comes after the stream was given up', async () => {
    let give!: (next: NextStream) => void;
    const again = new Promise<NextStream>((resolve) => (give = resolve));
    const stream = new RecoveringStream(scripted([event('hi')], cut), { dialect: openai, framing: 'sse', maxRecoveries: 1, again: () => again, onRecovery: () => {} });
    assert.ok(Buffer.isBuffer(stream.poll()));
    assert.equal(stream.poll(), undefined, 'the break starts a recovery: nothing to give until it is over');
    assert.equal(stream.ready(), stream.ready(), 'every reader waits on the same promise');
    stream.cancel();
    assert.deepEqual(stream.poll(), { kind: 'cancelled' });
    let cancels = 0;
    give({ body: { poll: () => undefined, ready: () => new Promise(() => {}), cancel: () => cancels++ } });
    await new Promise((r) => setImmediate(r));
    assert.equal(cancels, 1, 'the late stream has no reader: its connection is closed');
    assert.deepEqual(stream.poll(), { kind: 'cancelled' });
  });
});
