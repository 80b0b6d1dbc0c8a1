/**
 * How each dialect reads one whole stream event (readEvent): its content
 * pieces by channel, whether it fails the stream, opens the answer, which
 * choices it carries and finishes, whether it is the terminator, and the
 * usage it reports. Over tables of real events (the shapes of the OpenAI
 * and Anthropic SDKs' stream types, Azure's and vLLM's additions, Ollama's
 * NDJSON lines), and fuzzed: a reading depends on the event alone, never
 * throws, and withContent carries exactly the content it is told to.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type OpenAI from 'openai';
import { anthropic } from '../../sidecar/proxy/dialects/anthropic.js';
import type { Dialect, EventReading } from '../../sidecar/proxy/dialects/dialect.js';
import { generic } from '../../sidecar/proxy/dialects/generic.js';
import { ollamaChat, ollamaGenerate } from '../../sidecar/proxy/dialects/ollama.js';
import { openai } from '../../sidecar/proxy/dialects/openai.js';
import { EventReader } from '../../sidecar/proxy/streams/stream-events.js';
import { sse, ndjson, type StreamFraming } from '../../sidecar/proxy/streams/stream-framing.js';

/** A chat.completion.chunk as OpenAI's SDK types it (vLLM's and Azure's additions on top). */
const chunk = (choices: OpenAI.ChatCompletionChunk['choices'], extra: Partial<OpenAI.ChatCompletionChunk> & Record<string, unknown> = {}): OpenAI.ChatCompletionChunk => ({
  id: 'chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG',
  object: 'chat.completion.chunk',
  created: 1741570283,
  model: 'gpt-4o-2024-08-06',
  system_fingerprint: 'fp_eb9dce56a8',
  service_tier: 'default',
  choices,
  ...extra,
});
type Delta = OpenAI.ChatCompletionChunk.Choice.Delta & { reasoning_content?: string | null; reasoning?: string | null; audio?: object };
const choice = (delta: Delta, finish_reason: OpenAI.ChatCompletionChunk.Choice['finish_reason'] = null, index = 0): OpenAI.ChatCompletionChunk.Choice => ({ index, delta, logprobs: null, finish_reason });

/**
 * Each row: what the event is, its SSE event name (or "message") and data, and the reading expected. OPAQUE: content recovery
 * cannot vouch for (redacted thinking, a tool call that starts with its input): the model's output all the same, so it counts as content.
 */
const OPAQUE = Symbol('opaque');
type Row = [string, string, unknown, EventReading | typeof OPAQUE];

const OPENAI: Row[] = [
  ['the role chunk that opens the answer', 'message', chunk([choice({ role: 'assistant', content: '', refusal: null })]), { choices: [0], opens: true }],
  ['a content delta', 'message', chunk([choice({ content: 'Hello' })]), { choices: [0], content: [{ channel: 'text', text: 'Hello' }] }],
  ['a content delta with the role (some servers send it on every chunk)', 'message', chunk([choice({ role: 'assistant', content: 'Hi' })]), { choices: [0], content: [{ channel: 'text', text: 'Hi' }] }],
  ['vLLM / DeepSeek reasoning_content', 'message', chunk([choice({ content: null, reasoning_content: 'Let me think' })]), { choices: [0], content: [{ channel: 'reasoning', text: 'Let me think' }] }],
  ['OpenRouter reasoning', 'message', chunk([choice({ content: '', reasoning: 'Hmm.' })]), { choices: [0], content: [{ channel: 'reasoning', text: 'Hmm.' }] }],
  [
    'the start of a tool call (role, id, type, name)',
    'message',
    chunk([choice({ role: 'assistant', content: null, tool_calls: [{ index: 0, id: 'call_DdmO9pD3xa9XTPNJ32zg2hcA', type: 'function', function: { name: 'get_weather', arguments: '' } }], refusal: null })]),
    { choices: [0], content: [{ channel: 'tool0.name', text: 'get_weather' }] },
  ],
  ["a tool call's argument delta", 'message', chunk([choice({ tool_calls: [{ index: 0, function: { arguments: '{"location":' } }] })]), { choices: [0], content: [{ channel: 'tool0.args', text: '{"location":' }] }],
  ['a second, parallel tool call', 'message', chunk([choice({ tool_calls: [{ index: 1, id: 'call_2', type: 'function', function: { name: 'get_time', arguments: '{}' } }] })]), { choices: [0], content: [{ channel: 'tool1.name', text: 'get_time' }, { channel: 'tool1.args', text: '{}' }] }],
  ['the older function_call', 'message', chunk([choice({ function_call: { name: 'lookup', arguments: '{"q"' } })]), { choices: [0], content: [{ channel: 'function.name', text: 'lookup' }, { channel: 'function.args', text: '{"q"' }] }],
  ['a refusal delta', 'message', chunk([choice({ refusal: "I'm sorry, I can't help with that." })]), { choices: [0], content: [{ channel: 'refusal', text: "I'm sorry, I can't help with that." }] }],
  ['the finish', 'message', chunk([choice({}, 'stop')]), { choices: [0], finished: [0] }],
  ['a finish with tool calls', 'message', chunk([choice({}, 'tool_calls')]), { choices: [0], finished: [0] }],
  [
    'the usage-only chunk (stream_options.include_usage), choices []',
    'message',
    chunk([], { usage: { prompt_tokens: 19, completion_tokens: 10, total_tokens: 29, prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 }, completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 } } }),
    { usage: { input: 19, output: 10 } },
  ],
  ['usage: null on a content chunk', 'message', chunk([choice({ content: 'x' })], { usage: null }), { choices: [0], content: [{ channel: 'text', text: 'x' }] }],
  [
    "Azure's prompt_filter_results chunk, before the answer",
    'message',
    { choices: [], created: 0, id: '', model: '', object: '', prompt_filter_results: [{ prompt_index: 0, content_filter_results: { hate: { filtered: false, severity: 'safe' }, self_harm: { filtered: false, severity: 'safe' }, sexual: { filtered: false, severity: 'safe' }, violence: { filtered: false, severity: 'safe' } } }] },
    {},
  ],
  ["Azure's content chunk, with its filter results", 'message', chunk([{ ...choice({ content: 'Hi' }), content_filter_results: { hate: { filtered: false, severity: 'safe' } } } as OpenAI.ChatCompletionChunk.Choice]), { choices: [0], content: [{ channel: 'text', text: 'Hi' }] }],
  ['an audio delta (opaque)', 'message', chunk([choice({ audio: { id: 'audio_1', data: 'UklGR' } })]), { choices: [0], unverifiable: true }],
  [
    'n: 2, both choices in one chunk',
    'message',
    chunk([choice({ content: 'a' }, null, 0), choice({ content: 'b' }, null, 1)]),
    { choices: [0, 1], unverifiable: true, content: [{ channel: 'text', text: 'a' }, { channel: 'choice1.text', text: 'b' }] },
  ],
  ['n: 2, the second choice finishes alone', 'message', chunk([choice({}, 'stop', 1)]), { choices: [1], finished: [1], unverifiable: true }],
  ['n: 2, both finish', 'message', chunk([choice({}, 'stop', 0), choice({}, 'length', 1)]), { choices: [0, 1], finished: [0, 1], unverifiable: true }],
  ['text that mentions the terminator is content', 'message', chunk([choice({ content: 'data: [DONE]\n\n' })]), { choices: [0], content: [{ channel: 'text', text: 'data: [DONE]\n\n' }] }],
  ['an error event', 'message', { error: { message: 'The server is overloaded, please try again later.', type: 'server_error', param: null, code: null } }, { failure: { failure: 'overloaded', detail: 'an error event: {"message":"The server is overloaded, please try again later.","type":"server_error","param":null,"code":null}' } }],
  ['an error about the context', 'message', { error: { message: "This model's maximum context length is 8192 tokens.", type: 'invalid_request_error', code: 'context_length_exceeded' } }, { failure: { failure: 'context-length', detail: `an error event: ${JSON.stringify({ message: "This model's maximum context length is 8192 tokens.", type: 'invalid_request_error', code: 'context_length_exceeded' })}` } }],
];

/** An Anthropic event's data: its type and fields. */
const ev = (type: string, fields: object = {}) => ({ type, ...fields });
const ANTHROPIC: Row[] = [
  [
    'message_start',
    'message_start',
    ev('message_start', { message: { id: 'msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY', type: 'message', role: 'assistant', content: [], model: 'claude-sonnet-4-5', stop_reason: null, stop_sequence: null, usage: { input_tokens: 472, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 2 } } }),
    { opens: true, usage: { input: 472, output: 2 } },
  ],
  ['content_block_start of a text block', 'content_block_start', ev('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }), { opens: true, structure: 'start:0' }],
  ['content_block_start of a text block that starts with text', 'content_block_start', ev('content_block_start', { index: 2, content_block: { type: 'text', text: 'Hi' } }), { content: [{ channel: 'block2.text', text: 'Hi' }] }],
  ['text_delta', 'content_block_delta', ev('content_block_delta', { index: 0, delta: { type: 'text_delta', text: 'Hello' } }), { content: [{ channel: 'block0.text', text: 'Hello' }] }],
  [
    'content_block_start of a tool_use block',
    'content_block_start',
    ev('content_block_start', { index: 1, content_block: { type: 'tool_use', id: 'toolu_01T1x1fJ34qAmk2tNTrN7Up6', name: 'get_weather', input: {} } }),
    { content: [{ channel: 'block1.tool', text: 'get_weather' }] },
  ],
  [
    'content_block_start of a tool_use block that comes with its input',
    'content_block_start',
    ev('content_block_start', { index: 1, content_block: { type: 'tool_use', id: 'toolu_01', name: 'get_weather', input: { location: 'Paris' } } }),
    OPAQUE,
  ],
  ['the first, empty input_json_delta', 'content_block_delta', ev('content_block_delta', { index: 1, delta: { type: 'input_json_delta', partial_json: '' } }), {}],
  ['input_json_delta', 'content_block_delta', ev('content_block_delta', { index: 1, delta: { type: 'input_json_delta', partial_json: '{"location": "San Fra' } }), { content: [{ channel: 'block1.args', text: '{"location": "San Fra' }] }],
  ['content_block_start of a thinking block', 'content_block_start', ev('content_block_start', { index: 0, content_block: { type: 'thinking', thinking: '', signature: '' } }), { opens: true, structure: 'start:0' }],
  ['thinking_delta', 'content_block_delta', ev('content_block_delta', { index: 0, delta: { type: 'thinking_delta', thinking: 'Let me solve this step by step' } }), { content: [{ channel: 'block0.thinking', text: 'Let me solve this step by step' }] }],
  ['signature_delta: a mark of the thinking block, not content', 'content_block_delta', ev('content_block_delta', { index: 0, delta: { type: 'signature_delta', signature: 'EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds' } }), { structure: 'signature:0' }],
  ['content_block_start of redacted_thinking', 'content_block_start', ev('content_block_start', { index: 0, content_block: { type: 'redacted_thinking', data: 'EmwKAhgBEgy3va3pzix' } }), OPAQUE],
  ['a citations_delta', 'content_block_delta', ev('content_block_delta', { index: 0, delta: { type: 'citations_delta', citation: { type: 'char_location', cited_text: 'x', document_index: 0, document_title: null, start_char_index: 0, end_char_index: 1 } } }), OPAQUE],
  ['content_block_stop', 'content_block_stop', ev('content_block_stop', { index: 0 }), { structure: 'stop:0' }],
  ['message_delta with the stop_reason and usage', 'message_delta', ev('message_delta', { delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: 15 } }), { finished: [0], usage: { output: 15 } }],
  ['message_delta for tool use', 'message_delta', ev('message_delta', { delta: { stop_reason: 'tool_use', stop_sequence: null }, usage: { input_tokens: 472, output_tokens: 89 } }), { finished: [0], usage: { input: 472, output: 89 } }],
  ['message_stop', 'message_stop', ev('message_stop'), { terminal: true }],
  ['ping', 'ping', ev('ping'), {}],
  ['an error event', 'error', ev('error', { error: { type: 'overloaded_error', message: 'Overloaded' } }), { failure: { failure: 'overloaded', detail: 'an error event: {"type":"overloaded_error","message":"Overloaded"}' } }],
  ['text that mentions message_stop is content', 'content_block_delta', ev('content_block_delta', { index: 0, delta: { type: 'text_delta', text: 'event: message_stop\ndata: {"type":"message_stop"}\n\n' } }), { content: [{ channel: 'block0.text', text: 'event: message_stop\ndata: {"type":"message_stop"}\n\n' }] }],
];

const line = (fields: object) => ({ model: 'llama3.2', created_at: '2023-08-04T08:52:19.385406455-07:00', ...fields });
const OLLAMA_CHAT: Row[] = [
  ['a content line', 'message', line({ message: { role: 'assistant', content: 'The' }, done: false }), { content: [{ channel: 'text', text: 'The' }] }],
  ['a thinking line', 'message', line({ message: { role: 'assistant', content: '', thinking: 'Let me' }, done: false }), { content: [{ channel: 'reasoning', text: 'Let me' }] }],
  [
    'a tool-call line (the calls come whole)',
    'message',
    line({ message: { role: 'assistant', content: '', tool_calls: [{ function: { name: 'get_weather', arguments: { city: 'Paris' } } }] }, done: false }),
    { content: [{ channel: 'tools', text: '[{"function":{"name":"get_weather","arguments":{"city":"Paris"}}}]' }] },
  ],
  [
    'the done line',
    'message',
    line({ message: { role: 'assistant', content: '' }, done_reason: 'stop', done: true, total_duration: 4883583458, load_duration: 1334875, prompt_eval_count: 26, prompt_eval_duration: 342546000, eval_count: 282, eval_duration: 4535599000 }),
    { terminal: true, finished: [0], usage: { input: 26, output: 282 } },
  ],
  ['text that mentions the done field is content', 'message', line({ message: { role: 'assistant', content: '"done": true' }, done: false }), { content: [{ channel: 'text', text: '"done": true' }] }],
  ['an error line', 'message', { error: 'the input length exceeds the context length' }, { failure: { failure: 'context-length', detail: 'an error event: the input length exceeds the context length' } }],
];

const OLLAMA_GENERATE: Row[] = [
  ['a response line', 'message', line({ response: 'The', done: false }), { content: [{ channel: 'text', text: 'The' }] }],
  ['the done line', 'message', line({ response: '', done: true, done_reason: 'stop', context: [1, 2, 3], prompt_eval_count: 26, eval_count: 290 }), { terminal: true, finished: [0], usage: { input: 26, output: 290 } }],
];

const TABLES: [Dialect, Row[]][] = [
  [openai, OPENAI],
  [anthropic, ANTHROPIC],
  [ollamaChat, OLLAMA_CHAT],
  [ollamaGenerate, OLLAMA_GENERATE],
];

/** A reading with only its defined fields (a dialect may leave a field undefined rather than out). */
const defined = (reading: EventReading) => Object.fromEntries(Object.entries(reading).filter(([, v]) => v !== undefined));

describe('reading stream events', () => {
  for (const [dialect, rows] of TABLES) {
    it(`${dialect.name}: reads each real event as expected`, () => {
      for (const [what, event, data, expected] of rows) {
        const reading = defined(dialect.readEvent(event, JSON.stringify(data)));
        if (expected !== OPAQUE) {
          assert.deepEqual(reading, expected, `${dialect.name}: ${what}`);
          continue;
        }
        const { unverifiable, content, ...rest } = reading;
        assert.equal(unverifiable, true, `${what}: cannot be vouched for`);
        assert.equal((content as EventReading['content'])?.length, 1, `${what}: counts as content`);
        assert.ok(!/(^|\.)(text|tool|args)$/.test((content as EventReading['content'])![0]!.channel), `${what}: on a channel of its own`);
        assert.deepEqual(rest, {});
      }
    });
  }

  it("reads OpenAI's terminator, and data that is not JSON as a malformed event", () => {
    assert.deepEqual(openai.readEvent('message', '[DONE]'), { terminal: true });
    assert.deepEqual(openai.readEvent('message', '{"choices": ['), { failure: { failure: 'invalid-response', detail: 'a malformed event: "{\\"choices\\": ["' } });
    assert.equal(anthropic.readEvent('content_block_delta', 'not json').failure?.failure, 'invalid-response');
    assert.equal(ollamaChat.readEvent('message', '{"message": {').failure?.failure, 'invalid-response');
    assert.deepEqual(openai.readEvent('message', '[1, 2]'), {}, 'JSON that is not an object says nothing');
  });

  it('reads the terminator from the parsed event only: `data:[DONE]` without a space is terminal, a text that mentions it is not', () => {
    const reader = new EventReader(sse, openai);
    const events = reader.push(Buffer.from('data:[DONE]\n\n' + `data: ${JSON.stringify(chunk([choice({ content: 'data: [DONE]' })]))}\r\n\r\n` + 'data: [DONE]\r\n\r\n'));
    assert.deepEqual(
      events.map((e) => [e.fields?.data === '[DONE]', e.read.terminal === true, e.read.content?.[0]?.text]),
      [
        [true, true, undefined],
        [false, false, 'data: [DONE]'],
        [true, true, undefined],
      ],
    );
    const anthropicEvents = new EventReader(sse, anthropic).push(Buffer.from(`event: content_block_delta\ndata: ${JSON.stringify(ANTHROPIC.at(-1)![2])}\n\nevent: message_stop\ndata: {"type":"message_stop"}\n\n`));
    assert.deepEqual(
      anthropicEvents.map((e) => e.read.terminal === true),
      [false, true],
    );
  });

  it('reads an NDJSON stream a line at a time, and its last line without its line ending at the end', () => {
    const reader = new EventReader(ndjson, ollamaChat);
    const [content, done] = OLLAMA_CHAT.filter(([what]) => what === 'a content line' || what === 'the done line').map(([, , data]) => JSON.stringify(data));
    const events = reader.push(Buffer.from(`${content}\n\n${done}`));
    assert.deepEqual(
      events.map((e) => [e.fields?.data, e.read.content?.[0]?.text]),
      [
        [content, 'The'],
        [undefined, undefined],
      ],
      'a blank line is no event',
    );
    const last = reader.end();
    assert.equal(last?.raw, `${done}\n`);
    assert.equal(last?.read.terminal, true);
  });

  it('reads every event of an API it does not know as opaque content', () => {
    assert.deepEqual(generic.readEvent('message', '{"anything": 1}'), { content: [{ channel: 'opaque', text: '{"anything": 1}' }], unverifiable: true });
    assert.deepEqual(generic.readEvent('message', ''), {});
  });

  /** Event data as the APIs send it, errors and tool calls among it, and data that is not JSON or not an object. */
  const eventData = fc.oneof(
    fc.constantFrom(...TABLES.flatMap(([, rows]) => rows.map(([, , data]) => JSON.stringify(data)))),
    fc.string().map((content) => JSON.stringify(chunk([choice({ content })]))),
    fc.string().map((text) => JSON.stringify(ev('content_block_delta', { index: 0, delta: { type: 'text_delta', text } }))),
    fc.string().map((content) => JSON.stringify(line({ message: { role: 'assistant', content }, done: false }))),
    fc.constant(JSON.stringify(chunk([choice({ tool_calls: [{ index: 0 }] })]))),
    fc.string().map((message) => JSON.stringify({ error: { message, type: 'server_error' } })),
    fc.string(),
    fc.json(),
  );
  const readers: [Dialect, string][] = [
    [openai, 'message'],
    [anthropic, 'content_block_delta'],
    [anthropic, 'content_block_start'],
    [ollamaChat, 'message'],
    [ollamaGenerate, 'message'],
    [generic, 'message'],
  ];

  it('gives each event the same reading whatever was read before it, and never throws (property)', () => {
    fc.assert(
      fc.property(fc.array(eventData, { minLength: 1, maxLength: 12 }), fc.nat(), (events, seed) => {
        for (const [dialect, event] of readers) {
          const inOrder = events.map((data) => dialect.readEvent(event, data));
          // Each again after another event was read in between, and after withContent rewrote it.
          events.forEach((data, i) => {
            const other = events[(i + 1 + (seed % events.length)) % events.length]!;
            dialect.readEvent(event, other);
            dialect.withContent(event, other, []);
            assert.deepEqual(dialect.readEvent(event, data), inOrder[i]);
          });
          for (const reading of inOrder) if (reading.failure) assert.equal(reading.content, undefined, 'a failing event carries no content');
        }
      }),
      { numRuns: 300 },
    );
  });

  it('carries exactly the content withContent is told to, in the event as its API writes it (property)', () => {
    const framing = (dialect: Dialect): StreamFraming => (dialect === ollamaChat || dialect === ollamaGenerate ? ndjson : sse);
    // (Content that cannot be vouched for is never rewritten: a new stream that sends it before its new content diverges.)
    const contentRows = TABLES.flatMap(([dialect, rows]) => rows.filter(([, , , expected]) => expected !== OPAQUE && 'content' in expected).map(([what, event, data]) => [`${dialect.name}: ${what}`, event, JSON.stringify(data)] as const));
    const dialectOf = (what: string) => TABLES.find(([d]) => what.startsWith(`${d.name}: `))![0];
    fc.assert(
      fc.property(fc.constantFrom(...contentRows), fc.array(fc.option(fc.string({ minLength: 1, maxLength: 10 }), { nil: undefined }), { minLength: 4, maxLength: 4 }), ([what, event, data], keep) => {
        const dialect = dialectOf(what);
        const pieces = dialect.readEvent(event, data).content!;
        const kept = pieces.map((_, i) => keep[i]);
        // Ollama's tool calls come whole, as JSON: what stands in for them is JSON too.
        const texts = pieces.map((p, i) => (kept[i] !== undefined && p.channel === 'tools' ? JSON.stringify([{ function: { name: kept[i] } }]) : kept[i]));
        const raw = dialect.withContent(event, data, texts);
        const [again, ...more] = new EventReader(framing(dialect), dialect).push(Buffer.from(raw));
        assert.equal(more.length, 0, 'one whole event');
        assert.equal(again!.fields?.event, framing(dialect) === sse ? event : 'message');
        const expected = pieces.flatMap((p, i) => (texts[i] === undefined ? [] : [{ channel: p.channel, text: texts[i]! }]));
        assert.deepEqual(again!.read.content ?? [], expected, raw);
        assert.equal(again!.read.failure, undefined);
        // Everything else the event says stays (but an event left with no content opens a block, or the answer, instead).
        const { content: _a, opens: _b, structure: _c, ...rest } = defined(dialect.readEvent(event, data));
        const { content: _d, opens: _e, structure: _f, ...restAgain } = defined(again!.read);
        assert.deepEqual(restAgain, rest);
        assert.deepEqual(dialect.readEvent(event, data).content, pieces, 'the data it was given is left as it was');
      }),
      { numRuns: 500 },
    );
  });
});
