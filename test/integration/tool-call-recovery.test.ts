/**
 * Tool calls and reasoning, cut mid-stream, on the default policy plus one
 * fallback tier, on deterministic upstreams (the backup streams the same
 * call, with an id of its own), read through the SDKs' own accumulators:
 * `chat.completions.stream(...).finalChatCompletion()` (it checks each
 * choice's finish_reason and each call's name and arguments) and
 * `messages.stream(...).finalMessage()`.
 *
 * - A tool call cut in the middle of its arguments on every primary
 *   attempt: the app gets the whole call exactly once, its arguments equal
 *   to the canonical JSON.
 * - A regeneration that diverges (the backup writes other arguments from
 *   their first words on): a clean error, and never arguments that mix
 *   both calls.
 * - A reasoning stream (OpenAI-compatible `delta.reasoning_content`, an
 *   Anthropic thinking block, Ollama `message.thinking`) cut in the
 *   reasoning: the reasoning and the answer, whole.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ANTHROPIC_WEATHER_TOOL, anthropicStream, describeError, isCleanError, ollamaChat, openaiFinal, openaiStream, show, WEATHER_TOOL, type Seen } from '../support/app-clients.js';
import { always, everyOther, failoverRig, trace } from '../support/failover-rig.js';
import { argumentFragments, CANONICAL, reasoningTokens, type Fault, type ToolCall } from '../support/model-upstream.js';

const ARGS = { location: 'Paris, France', unit: 'celsius', days: [1, 2, 3], details: { wind: true, humidity: false } };
const OTHER_ARGS = { location: 'Lyon, France', unit: 'fahrenheit', days: [4], details: { wind: false, humidity: true } };
const CALL: ToolCall = { name: 'get_weather', arguments: JSON.stringify(ARGS), id: 'call_PrimaryA1b2C3d4E5f6G7h8' };
const BACKUP_CALL: ToolCall = { ...CALL, id: 'call_BackupZ9y8X7w6V5u4T3s2' };
const OTHER_CALL: ToolCall = { ...BACKUP_CALL, arguments: JSON.stringify(OTHER_ARGS) };
const PREFACE = "I'll check the weather in Paris for you. ";
const PREFACE_WORDS = PREFACE.split(' ').length - 1;
const ANTHROPIC_CALL: ToolCall = { ...CALL, id: 'toolu_01PrimaryA1b2C3d4E5f6G7', preface: PREFACE };
const ANTHROPIC_BACKUP_CALL: ToolCall = { ...ANTHROPIC_CALL, id: 'toolu_01BackupZ9y8X7w6V5u4T3' };
const ANTHROPIC_OTHER_CALL: ToolCall = { ...ANTHROPIC_BACKUP_CALL, arguments: JSON.stringify(OTHER_ARGS) };

/** OpenAI content events: the call's first chunk, then its fragments; cut after 10 of them (40 of ~100 characters). */
const OPENAI_MID_ARGS: Fault = { cutAfter: 1 + 10 };
/** Anthropic content events: the preface's words, then the fragments. */
const ANTHROPIC_MID_ARGS: Fault = { cutAfter: PREFACE_WORDS + 10 };

function assertOneWholeCall(s: Seen, finish: string): void {
  assert.equal(s.error, undefined, `no error reached the app: ${show(s)}`);
  assert.equal(s.toolCalls.length, 1, `exactly one tool call: ${show(s)}`);
  assert.equal(s.toolCalls[0]!.name, 'get_weather');
  let parsed: unknown;
  assert.doesNotThrow(() => (parsed = JSON.parse(s.toolCalls[0]!.arguments)), `the arguments parse: ${s.toolCalls[0]!.arguments}`);
  assert.deepEqual(parsed, ARGS, 'the canonical arguments');
  assert.equal(s.finish, finish);
}

/** After a diverging regeneration: an error, and what the app read of the arguments is a prefix of ONE call's; never a mix. */
function assertNotSpliced(s: Seen, primaryArgs: string, backupArgs: string): void {
  const seenArgs = s.toolCalls.map((c) => c.arguments).join('');
  assert.ok(s.toolCalls.length <= 1, `at most one tool call: ${show(s)}`);
  if (s.error !== undefined) {
    assert.ok(isCleanError(s.error), `a clean error event: ${describeError(s.error)}`);
    assert.ok(primaryArgs.startsWith(seenArgs), `an error after a prefix of the primary's arguments, nothing of the backup's: ${JSON.stringify(seenArgs)}`);
  } else {
    // Only a sidecar that held the cut call back entirely could hand over the backup's call, and then it must be whole.
    assert.equal(seenArgs, backupArgs, `no error, so one whole call, not a mix: ${show(s)}`);
  }
}

describe('tool calls and reasoning cut mid-stream, with one fallback tier', { concurrency: 4 }, () => {
  it('openai: a tool call cut mid-arguments on every primary attempt: finalChatCompletion has the whole call, once', { timeout: 30_000 }, async (t) => {
    const rig = await failoverRig(t, 'openai', { toolCall: CALL, fault: always(OPENAI_MID_ARGS) }, { toolCall: BACKUP_CALL });
    t.after(() => t.diagnostic(trace(rig)));
    const s = await openaiFinal(rig.baseURL, { tools: [WEATHER_TOOL], includeUsage: true });
    assertOneWholeCall(s, 'tool_calls');
    assert.ok(rig.backup.calls.length >= 1, 'the backup was asked');
    assert.ok(s.ms < 3000, `${s.ms} ms`);
  });

  it('openai: the same, read chunk by chunk: one tool call index, its arguments whole', { timeout: 30_000 }, async (t) => {
    const rig = await failoverRig(t, 'openai', { toolCall: CALL, fault: always(OPENAI_MID_ARGS) }, { toolCall: BACKUP_CALL });
    t.after(() => t.diagnostic(trace(rig)));
    const s = await openaiStream(rig.baseURL, { tools: [WEATHER_TOOL], includeUsage: true });
    assertOneWholeCall(s, 'tool_calls');
    assert.ok(s.toolCalls[0]!.id.startsWith('call_'), 'the call has an id');
  });

  it('openai: a tool call cut mid-arguments on every other call: the whole call, once', { timeout: 30_000 }, async (t) => {
    const rig = await failoverRig(t, 'openai', { toolCall: CALL, fault: everyOther(OPENAI_MID_ARGS) }, { toolCall: BACKUP_CALL });
    t.after(() => t.diagnostic(trace(rig)));
    assertOneWholeCall(await openaiFinal(rig.baseURL, { tools: [WEATHER_TOOL] }), 'tool_calls');
  });

  it('openai: a regeneration that diverges (other arguments): a clean error, never arguments that mix both calls', { timeout: 30_000 }, async (t) => {
    const rig = await failoverRig(t, 'openai', { toolCall: CALL, fault: always(OPENAI_MID_ARGS) }, { toolCall: OTHER_CALL });
    t.after(() => t.diagnostic(trace(rig)));
    const s = await openaiStream(rig.baseURL, { tools: [WEATHER_TOOL] });
    t.diagnostic(show(s));
    assertNotSpliced(s, CALL.arguments, OTHER_CALL.arguments);
  });

  it('anthropic: a tool_use cut mid-arguments (after a text preface) on every primary attempt: finalMessage has the preface and the whole call, once', { timeout: 30_000 }, async (t) => {
    const rig = await failoverRig(t, 'anthropic', { toolCall: ANTHROPIC_CALL, fault: always(ANTHROPIC_MID_ARGS) }, { toolCall: ANTHROPIC_BACKUP_CALL });
    t.after(() => t.diagnostic(trace(rig)));
    const s = await anthropicStream(rig.baseURL, { tools: [ANTHROPIC_WEATHER_TOOL] });
    assertOneWholeCall(s, 'tool_use');
    assert.deepEqual(s.message?.content.map((b) => b.type), ['text', 'tool_use'], 'one text block, one tool_use block');
    assert.equal(s.text, PREFACE);
    assert.ok(rig.backup.calls.length >= 1, 'the backup was asked');
    assert.ok(s.ms < 3000, `${s.ms} ms`);
  });

  it('anthropic: a tool_use cut mid-arguments on every other call: the whole call, once', { timeout: 30_000 }, async (t) => {
    const rig = await failoverRig(t, 'anthropic', { toolCall: ANTHROPIC_CALL, fault: everyOther(ANTHROPIC_MID_ARGS) }, { toolCall: ANTHROPIC_BACKUP_CALL });
    t.after(() => t.diagnostic(trace(rig)));
    const s = await anthropicStream(rig.baseURL, { tools: [ANTHROPIC_WEATHER_TOOL] });
    assertOneWholeCall(s, 'tool_use');
    assert.equal(s.text, PREFACE);
  });

  it('anthropic: a regeneration that diverges (other arguments): a clean error, never input that mixes both calls', { timeout: 30_000 }, async (t) => {
    const rig = await failoverRig(t, 'anthropic', { toolCall: ANTHROPIC_CALL, fault: always(ANTHROPIC_MID_ARGS) }, { toolCall: ANTHROPIC_OTHER_CALL });
    t.after(() => t.diagnostic(trace(rig)));
    const s = await anthropicStream(rig.baseURL, { tools: [ANTHROPIC_WEATHER_TOOL] });
    t.diagnostic(show(s));
    if (s.error === undefined) assert.equal(s.text, PREFACE, 'the preface once');
    assertNotSpliced(s, ANTHROPIC_CALL.arguments, ANTHROPIC_OTHER_CALL.arguments);
  });

  it('openai-compatible reasoning (delta.reasoning_content, as vLLM and DeepSeek send it) cut in the reasoning on every primary attempt: reasoning and answer whole', { timeout: 30_000 }, async (t) => {
    const rig = await failoverRig(t, 'openai', { reasoning: 20, fault: always({ cutAfter: 10 }) }, { reasoning: 20 });
    t.after(() => t.diagnostic(trace(rig)));
    const s = await openaiStream(rig.baseURL, { includeUsage: true });
    assert.equal(s.error, undefined, show(s));
    assert.equal(s.reasoning, reasoningTokens(20).join(''), `the reasoning whole: ${show(s)}`);
    assert.equal(s.text, CANONICAL);
    assert.equal(s.finish, 'stop');
    assert.ok(rig.backup.calls.length >= 1, 'the backup was asked');
  });

  it('openai-compatible reasoning cut in the reasoning on every other call: reasoning and answer whole', { timeout: 30_000 }, async (t) => {
    const rig = await failoverRig(t, 'openai', { reasoning: 20, fault: everyOther({ cutAfter: 10 }) }, { reasoning: 20 });
    t.after(() => t.diagnostic(trace(rig)));
    const s = await openaiStream(rig.baseURL);
    assert.equal(s.error, undefined, show(s));
    assert.equal(s.reasoning, reasoningTokens(20).join(''));
    assert.equal(s.text, CANONICAL);
  });

  it('anthropic thinking cut in the thinking block on every primary attempt: the thinking (with its signature) and the text whole', { timeout: 30_000 }, async (t) => {
    const rig = await failoverRig(t, 'anthropic', { reasoning: 20, fault: always({ cutAfter: 10 }) }, { reasoning: 20 });
    t.after(() => t.diagnostic(trace(rig)));
    const s = await anthropicStream(rig.baseURL, { thinking: true });
    assert.equal(s.error, undefined, show(s));
    assert.deepEqual(s.message?.content.map((b) => b.type), ['thinking', 'text']);
    assert.equal(s.reasoning, reasoningTokens(20).join(''));
    assert.ok(s.message?.content[0]?.type === 'thinking' && s.message.content[0].signature !== '', 'the signature came through');
    assert.equal(s.text, CANONICAL);
  });

  it('ollama thinking (message.thinking) cut in the thinking on every primary attempt: thinking and answer whole', { timeout: 30_000 }, async (t) => {
    const rig = await failoverRig(t, 'ollama', { reasoning: 20, fault: always({ cutAfter: 10 }) }, { reasoning: 20 });
    t.after(() => t.diagnostic(trace(rig)));
    const s = await ollamaChat(rig.baseURL);
    assert.equal(s.error, undefined, show(s));
    assert.equal(s.reasoning, reasoningTokens(20).join(''));
    assert.equal(s.text, CANONICAL);
    assert.ok(s.ended);
  });

  it('the cut really falls inside the arguments: 40 of the call\'s characters, not a fragment boundary at either end', () => {
    const fragments = argumentFragments(CALL);
    const sent = fragments.slice(0, 10).join('');
    assert.ok(sent.length > 0 && sent.length < CALL.arguments.length, `${sent.length} of ${CALL.arguments.length}`);
    assert.throws(() => JSON.parse(sent), 'the part sent before the cut is not JSON on its own');
    assert.notEqual(OTHER_CALL.arguments.slice(0, sent.length), sent, 'the diverging call differs within what was sent');
  });
});
