/**
 * A recovery's new stream inside the attempt (resumed-stream.ts): passed
 * through its seam, it gives the app only what follows the content the app
 * has, from its first new content on: the repeat is left out (an event the
 * seam enters in the middle rewritten to carry only its new part), so are
 * its opening events, and events after the catch-up wait for new content; a
 * new stream that is not the answer the app has ends `diverged` before the
 * app sees anything of it. Over OpenAI's and Anthropic's real event shapes,
 * cut at other points than the first stream's.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { anthropic } from '../../sidecar/proxy/dialects/anthropic.js';
import type { Dialect, StreamEvent } from '../../sidecar/proxy/dialects/dialect.js';
import { openai } from '../../sidecar/proxy/dialects/openai.js';
import { ResumedStream } from '../../sidecar/proxy/streams/resumed-stream.js';
import { bytesOf, nextOf, type StreamEnd } from '../../sidecar/proxy/streams/stream-body.js';
import { EventReader } from '../../sidecar/proxy/streams/stream-events.js';
import { ContinuationSeam } from '../../sidecar/resilience/continuation-seam.js';
import { DeliveredContent, RegenerationSeam, type Seam } from '../../sidecar/resilience/stream-verifier.js';
import { DrivenStream } from '../support/layer-kit.js';
import { sse } from '../../sidecar/proxy/streams/stream-framing.js';

/** OpenAI's chat.completion.chunk events. */
const oa = {
  chunk: (delta: object, finish: string | null = null, extra: object = {}) =>
    `data: ${JSON.stringify({ id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 1, model: 'm', choices: [{ index: 0, delta, finish_reason: finish }], ...extra })}\n\n`,
  role: () => oa.chunk({ role: 'assistant', content: '' }),
  text: (content: string) => oa.chunk({ content }),
  toolStart: (id: string, name: string, args = '') => oa.chunk({ tool_calls: [{ index: 0, id, type: 'function', function: { name, arguments: args } }] }),
  args: (args: string) => oa.chunk({ tool_calls: [{ index: 0, function: { arguments: args } }] }),
  finish: (reason = 'stop') => oa.chunk({}, reason),
  usage: () => `data: ${JSON.stringify({ id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 1, model: 'm', choices: [], usage: { prompt_tokens: 5, completion_tokens: 7, total_tokens: 12 } })}\n\n`,
  done: 'data: [DONE]\n\n',
};

/** Anthropic's Messages stream events. */
const an = {
  event: (type: string, data: object = {}) => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`,
  start: (id: string) => an.event('message_start', { message: { id, type: 'message', role: 'assistant', model: 'm', content: [], stop_reason: null, usage: { input_tokens: 5, output_tokens: 1 } } }),
  textBlock: (index = 0) => an.event('content_block_start', { index, content_block: { type: 'text', text: '' } }),
  text: (text: string, index = 0) => an.event('content_block_delta', { index, delta: { type: 'text_delta', text } }),
  toolBlock: (index: number, id: string, name: string) => an.event('content_block_start', { index, content_block: { type: 'tool_use', id, name, input: {} } }),
  json: (partial_json: string, index: number) => an.event('content_block_delta', { index, delta: { type: 'input_json_delta', partial_json } }),
  stop: (index = 0) => an.event('content_block_stop', { index }),
  ping: () => an.event('ping'),
  delta: (reason = 'end_turn') => an.event('message_delta', { delta: { stop_reason: reason, stop_sequence: null }, usage: { output_tokens: 9 } }),
  end: () => an.event('message_stop'),
};

/** What the app has, noted as the recovering stream notes it: the content of the events the first stream sent it, and the block marks after it. */
function deliveredBy(dialect: Dialect, events: string[]): DeliveredContent {
  const delivered = new DeliveredContent();
  for (const { read } of new EventReader(sse, dialect).push(Buffer.from(events.join('')))) {
    if (read.content) for (const piece of read.content) delivered.add(piece);
    else if (read.structure !== undefined) delivered.mark(read.structure);
  }
  return delivered;
}

/** The app's events, read again from the bytes it was sent (a rewritten event must parse as its API's). */
const reread = (dialect: Dialect, bytes: Buffer) => new EventReader(sse, dialect).push(bytes);

/** The text of each channel, in order, over `events`. */
function contentOf(events: readonly StreamEvent[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const event of events) for (const { channel, text } of event.read.content ?? []) out[channel] = (out[channel] ?? '') + text;
  return out;
}

/** Runs a new stream (`chunks`, each pushed at once, then its end) through a ResumedStream; the app's bytes, its events read again, and the end. */
async function resumed(dialect: Dialect, seam: Seam, chunks: string[][], end: 'complete' | 'reset' = 'complete') {
  const body = new DrivenStream(dialect);
  for (const chunk of chunks) body.push(chunk.join(''));
  if (end === 'complete') body.end();
  else body.fail(end);
  const stream = new ResumedStream(body, seam, dialect, sse);
  const sent: Buffer[] = [];
  const passed: StreamEvent[] = [];
  let last: StreamEnd;
  for (;;) {
    const next = await nextOf(stream);
    if (next.kind !== 'chunk') {
      last = next;
      break;
    }
    sent.push(Buffer.from(bytesOf(next)));
    passed.push(...next.events);
  }
  const bytes = Buffer.concat(sent);
  const events = reread(dialect, bytes);
  // What the recovering stream notes as delivered (the events' readings) is what the app reads in their bytes.
  assert.deepEqual(contentOf(passed), contentOf(events));
  return { text: bytes.toString(), events, end: last, chunks: sent.length, cancels: body.cancels };
}

const regenerating = (delivered: DeliveredContent) => new RegenerationSeam(delivered.all, delivered.trailing);
const continuing = (delivered: DeliveredContent, carried = delivered.text!.text.length) => new ContinuationSeam(delivered.text!.text, carried, delivered.text!.channel);

describe('ResumedStream: a regenerated stream', () => {
  it('OpenAI: gives only the content past what the app has, the event it straddles rewritten, and no role chunk', async () => {
    const delivered = deliveredBy(openai, [oa.role(), oa.text('Hel'), oa.text('lo wor')]);
    const run = await resumed(openai, regenerating(delivered), [[oa.role(), oa.text('Hello')], [oa.text(' world'), oa.text('!')], [oa.finish(), oa.usage(), oa.done]]);
    assert.equal(run.end.kind, 'complete');
    const [first, ...rest] = run.events;
    assert.equal(JSON.parse(first!.fields!.data).choices[0].delta.content, 'ld', 'the straddling event carries only its new part');
    assert.equal(JSON.parse(first!.fields!.data).id, 'chatcmpl-1', 'and is otherwise the event it was');
    assert.deepEqual(
      rest.map((e) => e.raw),
      [oa.text('!'), oa.finish(), oa.usage(), oa.done],
      'then the rest as it came',
    );
    assert.deepEqual(contentOf(run.events), { text: 'ld!' });
    assert.ok(!run.text.includes('"role"'), 'no second role chunk');
  });

  it('Anthropic: leaves out message_start and the start of the block the app has, and rewrites the straddling delta', async () => {
    const delivered = deliveredBy(anthropic, [an.start('msg_A'), an.textBlock(), an.text('Hel'), an.text('lo wor')]);
    const run = await resumed(anthropic, regenerating(delivered), [[an.start('msg_B'), an.textBlock(), an.ping(), an.text('Hello w')], [an.text('orld'), an.text('!'), an.stop()], [an.delta(), an.end()]]);
    assert.equal(run.end.kind, 'complete');
    const [first, ...rest] = run.events;
    assert.equal(first!.fields!.event, 'content_block_delta');
    assert.deepEqual(JSON.parse(first!.fields!.data), { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'ld' } });
    assert.deepEqual(
      rest.map((e) => e.raw),
      [an.text('!'), an.stop(), an.delta(), an.end()],
    );
    assert.ok(!run.text.includes('message_start') && !run.text.includes('content_block_start') && !run.text.includes('msg_B') && !run.text.includes('ping'));
  });

  it('holds the events that follow the catch-up until new content comes, then passes them on with it', async () => {
    const delivered = deliveredBy(anthropic, [an.start('msg_A'), an.textBlock(), an.text('Hello')]);
    const body = new DrivenStream(anthropic);
    const stream = new ResumedStream(body, regenerating(delivered), anthropic, sse);
    body.push(an.start('msg_B') + an.textBlock() + an.text('Hel') + an.text('lo'));
    assert.equal(stream.poll(), undefined, 'the repeat: nothing for the app');
    body.push(an.ping());
    assert.equal(stream.poll(), undefined, 'caught up, but nothing new yet: the ping waits');
    body.push(an.text(' there') + an.stop());
    const next = stream.poll();
    assert.equal(next?.kind, 'chunk');
    assert.deepEqual(
      next?.kind === 'chunk' && next.events.map((e) => e.raw),
      [an.ping(), an.text(' there'), an.stop()],
      'held, in order, with the new content',
    );
    body.push(an.delta());
    const after = stream.poll();
    assert.deepEqual(after?.kind === 'chunk' && after.events.map((e) => e.raw), [an.delta()], 'past the seam, chunks pass as they come');
  });

  it('ends complete, with the closing events, when it completes right where the app stood', async () => {
    const delivered = deliveredBy(openai, [oa.role(), oa.text('Done.')]);
    const run = await resumed(openai, regenerating(delivered), [[oa.role(), oa.text('Do'), oa.text('ne.')], [oa.finish(), oa.done]]);
    assert.equal(run.end.kind, 'complete');
    assert.equal(run.text, oa.finish() + oa.done);
  });

  it('OpenAI tool calls: continues the arguments exactly once, and leaves out the repeated tool-call start with its new id', async () => {
    const first = [oa.role(), oa.toolStart('call_A', 'get_weather'), oa.args('{"ci'), oa.args('ty": "Par')];
    const delivered = deliveredBy(openai, first);
    const run = await resumed(openai, regenerating(delivered), [[oa.role(), oa.toolStart('call_B', 'get_weather')], [oa.args('{"city": '), oa.args('"Paris"}')], [oa.finish('tool_calls'), oa.done]]);
    assert.equal(run.end.kind, 'complete');
    assert.ok(!run.text.includes('call_B') && !run.text.includes('get_weather'), 'no second tool-call start');
    assert.deepEqual(JSON.parse(run.events[0]!.fields!.data).choices[0].delta, { tool_calls: [{ index: 0, function: { arguments: 'is"}' } }] });
    const app = [...new EventReader(sse, openai).push(Buffer.from(first.join(''))), ...run.events];
    assert.equal(contentOf(app)['tool0.args'], '{"city": "Paris"}', 'the arguments the app reads, over both streams');
    assert.equal(contentOf(app)['tool0.name'], 'get_weather');
  });

  it('OpenAI tool calls: a start that also carries arguments past what the app has loses its id, type and name, and keeps the new arguments', async () => {
    const delivered = deliveredBy(openai, [oa.role(), oa.toolStart('call_A', 'get_weather'), oa.args('{"ci')]);
    const run = await resumed(openai, regenerating(delivered), [[oa.role(), oa.toolStart('call_B', 'get_weather', '{"city": "Paris"}')], [oa.finish('tool_calls'), oa.done]]);
    assert.equal(run.end.kind, 'complete');
    assert.deepEqual(JSON.parse(run.events[0]!.fields!.data).choices[0].delta, { tool_calls: [{ index: 0, function: { arguments: 'ty": "Paris"}' } }] });
  });

  it('Anthropic tool_use: continues the input JSON exactly once, and leaves out the repeated tool_use start with its new id', async () => {
    const first = [an.start('msg_A'), an.textBlock(), an.text('Let me check.'), an.stop(0), an.toolBlock(1, 'toolu_A', 'get_weather'), an.json('{"city": "Pa', 1)];
    const delivered = deliveredBy(anthropic, first);
    const run = await resumed(anthropic, regenerating(delivered), [
      [an.start('msg_B'), an.textBlock(), an.text('Let me'), an.text(' check.'), an.stop(0)],
      [an.toolBlock(1, 'toolu_B', 'get_weather'), an.json('{"ci', 1)],
      [an.json('ty": "Paris"}', 1), an.stop(1), an.delta('tool_use'), an.end()],
    ]);
    assert.equal(run.end.kind, 'complete');
    assert.ok(!run.text.includes('toolu_B') && !run.text.includes('content_block_start') && !run.text.includes('message_start'));
    assert.deepEqual(JSON.parse(run.events[0]!.fields!.data), { type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: 'ris"}' } });
    assert.deepEqual(
      run.events.slice(1).map((e) => e.raw),
      [an.stop(1), an.delta('tool_use'), an.end()],
    );
    const app = [...new EventReader(sse, anthropic).push(Buffer.from(first.join(''))), ...run.events];
    assert.deepEqual(contentOf(app), { 'block0.text': 'Let me check.', 'block1.tool': 'get_weather', 'block1.args': '{"city": "Paris"}' });
  });

  it('passes the start of a block the app does not have yet', async () => {
    const delivered = deliveredBy(anthropic, [an.start('msg_A'), an.textBlock(), an.text('Let me check.')]);
    const run = await resumed(anthropic, regenerating(delivered), [[an.start('msg_B'), an.textBlock(), an.text('Let me check.'), an.stop(0), an.toolBlock(1, 'toolu_B', 'get_weather'), an.json('{}', 1), an.stop(1), an.delta('tool_use'), an.end()]]);
    assert.deepEqual(
      run.events.map((e) => e.raw),
      [an.stop(0), an.toolBlock(1, 'toolu_B', 'get_weather'), an.json('{}', 1), an.stop(1), an.delta('tool_use'), an.end()],
    );
  });

  it("Anthropic: takes up the answer after the block marks the app has (a block's stop), and passes the next block's start", async () => {
    const first = [an.start('msg_A'), an.textBlock(), an.text('Let me check.'), an.stop(0)];
    const delivered = deliveredBy(anthropic, first);
    assert.deepEqual(delivered.trailing, ['stop:0']);
    assert.equal(delivered.text, undefined, 'a closed block cannot be continued: the answer is regenerated');
    const run = await resumed(anthropic, regenerating(delivered), [[an.start('msg_B'), an.textBlock(), an.text('Let me check.')], [an.stop(0), an.ping()], [an.toolBlock(1, 'toolu_B', 'get_weather'), an.json('{}', 1), an.stop(1), an.delta('tool_use'), an.end()]]);
    assert.equal(run.end.kind, 'complete');
    assert.deepEqual(
      run.events.map((e) => e.raw),
      [an.ping(), an.toolBlock(1, 'toolu_B', 'get_weather'), an.json('{}', 1), an.stop(1), an.delta('tool_use'), an.end()],
      'the stop the app has is left out; the ping after it waited for the new block',
    );
  });

  it('Anthropic: ends as diverged when a regeneration goes on with a block the app has seen closed', async () => {
    const delivered = deliveredBy(anthropic, [an.start('msg_A'), an.textBlock(), an.text('Let me check.'), an.stop(0)]);
    const goesOn = await resumed(anthropic, regenerating(delivered), [[an.start('msg_B'), an.textBlock(), an.text('Let me check.'), an.text(' More.'), an.stop(0), an.delta(), an.end()]]);
    assert.equal(goesOn.end.kind === 'failed' && goesOn.end.failure, 'diverged');
    assert.equal(goesOn.chunks, 0);
    const stopsShort = await resumed(anthropic, regenerating(delivered), [[an.start('msg_B'), an.textBlock(), an.text('Let me check.'), an.delta(), an.end()]]);
    assert.equal(stopsShort.end.kind === 'failed' && stopsShort.end.failure, 'diverged', 'a stream that ends without the stop the app has is not its answer');
    const otherBlock = await resumed(anthropic, regenerating(delivered), [[an.start('msg_B'), an.textBlock(), an.text('Let me check.'), an.stop(1), an.end()]]);
    assert.equal(otherBlock.end.kind === 'failed' && otherBlock.end.failure, 'diverged');
  });

  for (const [what, dialect, first, next] of [
    ['OpenAI text', openai, [oa.role(), oa.text('Hello wor')], [[oa.role(), oa.text('Hello')], [oa.text(' there'), oa.finish(), oa.done]]],
    ['OpenAI tool arguments', openai, [oa.role(), oa.toolStart('call_A', 'get_weather'), oa.args('{"city": "Pa')], [[oa.role(), oa.toolStart('call_B', 'get_weather'), oa.args('{"city": "Rome"}')], [oa.finish('tool_calls'), oa.done]]],
    ['OpenAI text where the app had a tool call', openai, [oa.role(), oa.toolStart('call_A', 'get_weather')], [[oa.role(), oa.text('get_weather'), oa.finish(), oa.done]]],
    ['Anthropic input JSON', anthropic, [an.start('msg_A'), an.toolBlock(0, 'toolu_A', 'get_weather'), an.json('{"city": "Pa', 0)], [[an.start('msg_B'), an.toolBlock(0, 'toolu_B', 'get_weather'), an.json('{"city": "Rome"}', 0), an.stop(0), an.delta('tool_use'), an.end()]]],
    ['Anthropic thinking where the app had text', anthropic, [an.start('msg_A'), an.textBlock(), an.text('Hi')], [[an.start('msg_B'), an.event('content_block_start', { index: 0, content_block: { type: 'thinking', thinking: '' } })], [an.event('content_block_delta', { index: 0, delta: { type: 'thinking_delta', thinking: 'Hi' } }), an.text('Hi there'), an.end()]]],
    ['Anthropic redacted thinking (different in every generation)', anthropic, [an.start('msg_A'), an.textBlock(), an.text('Hi')], [[an.start('msg_B'), an.event('content_block_start', { index: 0, content_block: { type: 'redacted_thinking', data: 'EmwK' } })], [an.text('Hi there'), an.end()]]],
  ] as const) {
    it(`ends as diverged, and gives the app nothing, when a regeneration is not the answer the app has: ${what}`, async () => {
      const run = await resumed(dialect, regenerating(deliveredBy(dialect, [...first])), next.map((c) => [...c]));
      assert.equal(run.end.kind, 'failed');
      assert.equal(run.end.kind === 'failed' && run.end.failure, 'diverged');
      assert.equal(run.chunks, 0, 'no chunk before the end');
      assert.equal(run.cancels, 1, 'the new stream is given up');
    });
  }

  it('ends as diverged when the new stream completes before it repeated what the app has', async () => {
    const run = await resumed(openai, regenerating(deliveredBy(openai, [oa.role(), oa.text('Hello, world')])), [[oa.role(), oa.text('Hello'), oa.finish(), oa.done]]);
    assert.deepEqual(run.end, { kind: 'failed', failure: 'diverged', detail: 'a new attempt ended before it had repeated the content already sent' });
    assert.equal(run.chunks, 0);
  });

  it('passes on how the new stream failed before it had new content, and nothing of it', async () => {
    const run = await resumed(openai, regenerating(deliveredBy(openai, [oa.role(), oa.text('Hello')])), [[oa.role(), oa.text('Hello')], [oa.finish()]], 'reset');
    assert.deepEqual(run.end, { kind: 'failed', failure: 'reset', detail: 'test' });
    assert.equal(run.chunks, 0);
  });
});

describe('ResumedStream: any cuts (property)', () => {
  /** `text` cut at `cuts` into non-empty pieces. */
  const cutText = (text: string, cuts: number[]) => {
    const at = [...new Set(cuts.map((c) => c % (text.length + 1)))].filter((c) => c > 0 && c < text.length).sort((a, b) => a - b);
    return [...at, text.length].map((c, i, all) => text.slice(i === 0 ? 0 : all[i - 1], c));
  };
  const shapes = [
    { dialect: openai, opening: [oa.role()], piece: oa.text, closing: [oa.finish(), oa.done] },
    { dialect: anthropic, opening: [an.start('msg'), an.textBlock()], piece: (t: string) => an.text(t), closing: [an.stop(), an.delta(), an.end()] },
  ];

  it('gives the app exactly the rest of the answer, however the first and the new stream cut it into events and chunks', async () => {
    await fc.assert(
      fc.asyncProperty(fc.string({ minLength: 2, maxLength: 40 }), fc.nat(), fc.array(fc.nat(), { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 4 }), async (answer, at, firstCuts, newCuts, chunkCuts) => {
        const k = 1 + (at % (answer.length - 1));
        for (const { dialect, opening, piece, closing } of shapes) {
          const first = [...opening, ...cutText(answer.slice(0, k), firstCuts).map(piece)];
          const events = [...opening, ...cutText(answer, newCuts).map(piece), ...closing];
          const chunks = cutText('x'.repeat(events.length), chunkCuts).reduce<string[][]>((all, c) => [...all, events.slice(all.flat().length, all.flat().length + c.length)], []);
          const run = await resumed(dialect, regenerating(deliveredBy(dialect, first)), chunks);
          assert.equal(run.end.kind, 'complete');
          assert.equal(Object.values(contentOf(run.events)).join(''), answer.slice(k), dialect.name);
          assert.ok(!run.events.some((e) => e.read.opens), 'no opening event');
          assert.deepEqual(run.events.slice(-closing.length).map((e) => e.raw), closing);
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('ResumedStream: a continuation', () => {
  it('leaves out the opening events of a continuation and relays its new text and closing events', async () => {
    const delivered = deliveredBy(anthropic, [an.start('msg_A'), an.textBlock(), an.text('Hello'), an.text(' wor')]);
    const run = await resumed(anthropic, continuing(delivered), [[an.start('msg_B'), an.textBlock()], [an.text('ld!'), an.stop(), an.delta(), an.end()]]);
    assert.equal(run.end.kind, 'complete');
    assert.deepEqual(
      run.events.map((e) => e.raw),
      [an.text('ld!'), an.stop(), an.delta(), an.end()],
    );
  });

  it('verifies the part of the text the request did not carry (whitespace Anthropic refuses), and leaves it out', async () => {
    const delivered = deliveredBy(anthropic, [an.start('msg_A'), an.textBlock(), an.text('Hello ')]);
    const run = await resumed(anthropic, continuing(delivered, 'Hello'.length), [[an.start('msg_B'), an.textBlock(), an.text(' world'), an.stop(), an.delta(), an.end()]]);
    assert.equal(run.end.kind, 'complete');
    assert.deepEqual(JSON.parse(run.events[0]!.fields!.data).delta, { type: 'text_delta', text: 'world' }, 'the continuation past the space');
    assert.deepEqual(contentOf(run.events), { 'block0.text': 'world' });
  });

  it('ends as diverged, with nothing sent, when a continuation contradicts the whitespace it did not carry', async () => {
    const delivered = deliveredBy(anthropic, [an.start('msg_A'), an.textBlock(), an.text('Hello\n')]);
    const run = await resumed(anthropic, continuing(delivered, 'Hello'.length), [[an.text(' world'), an.stop(), an.delta(), an.end()]]);
    assert.equal(run.end.kind === 'failed' && run.end.failure, 'diverged');
    assert.equal(run.chunks, 0);
  });

  it('ends as diverged when a continuation restarts the answer (a model that ignores the prefill)', async () => {
    const delivered = deliveredBy(openai, [oa.role(), oa.text('The cat sat')]);
    const run = await resumed(openai, continuing(delivered), [[oa.role(), oa.text('The cat'), oa.text(' sat on the mat.'), oa.finish(), oa.done]]);
    assert.deepEqual(run.end, { kind: 'failed', failure: 'diverged', detail: 'a continuation repeated the text already sent' });
    assert.equal(run.chunks, 0);
  });

  it('ends as diverged when a continuation adds no text (the answer was all but done): the request is then regenerated, which closes it', async () => {
    const first = [an.start('msg_A'), an.textBlock(), an.text('Done.')];
    const continued = await resumed(anthropic, continuing(deliveredBy(anthropic, first)), [[an.start('msg_B'), an.textBlock(), an.stop(), an.delta(), an.end()]]);
    assert.deepEqual(continued.end, { kind: 'failed', failure: 'diverged', detail: 'a continuation added no text' });
    assert.equal(continued.chunks, 0);
    const regenerated = await resumed(anthropic, regenerating(deliveredBy(anthropic, first)), [[an.start('msg_C'), an.textBlock(), an.text('Done.'), an.stop(), an.delta(), an.end()]]);
    assert.equal(regenerated.end.kind, 'complete');
    assert.equal(regenerated.text, an.stop() + an.delta() + an.end());
  });
});
