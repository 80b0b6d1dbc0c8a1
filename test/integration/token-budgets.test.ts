/**
 * Token budgets on a real sidecar process against upstreams that report
 * usage: an agent-like loop, whose context grows each turn, runs past a
 * 10,000-token hour budget and is stopped with 429 budget_exhausted (on one
 * upstream) or handed to a cheaper tier (on another); the sidecar is killed
 * and restarted, and the budget is still spent. Anthropic's prompt-cache
 * tokens are charged as input; requests without max_tokens reserve output,
 * so 20 at once cannot all be let in, yet a nearly spent budget still serves
 * them one at a time; a plain answer without usage is charged its text.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { listen } from '../../lib/index.js';
import { openai } from '../../sidecar/proxy/dialects/openai.js';
import { post } from '../support/harness.js';
import { spawnSidecar, startSidecarProcess, writePolicy } from '../support/sidecar-process.js';
import { until } from '../support/until.js';

const HOUR = 3_600_000;
const OUTPUT_TOKENS = 400;

/** An OpenAI-shaped model that bills like a real one: the whole context as input each turn, 400 tokens out; streams report usage in their last chunk. */
async function startBillingModel(t: TestContext, name: string) {
  const calls: { tokens: number }[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString()) as { messages: unknown[]; stream?: boolean };
      const usage = { input: 400 * body.messages.length, output: OUTPUT_TOKENS };
      calls.push({ tokens: usage.input + usage.output });
      if (!body.stream) {
        res.writeHead(200, { 'content-type': 'application/json' }).end(openai.composeAnswer!(name, `answer from ${name}`, usage));
        return;
      }
      const events = openai.composeStream!(name, ['answer ', `from ${name}`], usage);
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      for (const e of [...events.start, ...events.content, ...events.end]) res.write(e);
      res.end();
    });
  });
  const url = await listen(server, { host: '127.0.0.1', port: 0 });
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  return { url, calls };
}

/** The window must not roll during the test: within a minute of the hour, wait for it. */
async function awayFromTheHour() {
  const left = HOUR - (Date.now() % HOUR);
  if (left < 60_000) await new Promise((r) => setTimeout(r, left + 1000));
}

interface Turn {
  status: number;
  code?: string;
  tier?: string | null;
  retryAfter: number;
}

/** One agent: keeps adding a turn to its conversation until told to stop or `maxTurns` (a runaway loop, bounded). */
async function agentLoop(url: string, maxTurns: number, stream: (turn: number) => boolean): Promise<Turn[]> {
  const messages: { role: string; content: string }[] = [{ role: 'user', content: 'plan the migration' }];
  const turns: Turn[] = [];
  for (let turn = 0; turn < maxTurns; turn++) {
    const res = await post(url, JSON.stringify({ model: 'agent', max_tokens: OUTPUT_TOKENS, messages, stream: stream(turn), stream_options: stream(turn) ? { include_usage: true } : undefined }));
    turns.push({ status: res.status, code: res.status === 200 ? undefined : res.json().error?.code, tier: res.headers.get('x-breakwater-fallback'), retryAfter: Number(res.headers.get('retry-after')) });
    if (res.status !== 200) break;
    messages.push({ role: 'assistant', content: 'step done' }, { role: 'user', content: 'continue' });
  }
  return turns;
}

describe('token budgets on a real sidecar', () => {
  it('stops an agent loop past a 10,000-token hour budget with 429 budget_exhausted, routes another to a cheaper tier, and a restarted sidecar keeps the budget spent', async (t) => {
    const frontier = await startBillingModel(t, 'frontier');
    const small = await startBillingModel(t, 'small');
    const policy = writePolicy(`upstreams:
  - {name: metered, url: "${frontier.url}", budget: {window: hour, tokens: 10000}}
  - name: routed
    url: "${frontier.url}"
    budget: {window: hour, tokens: 10000}
    fallback: [{upstream: small, when: [budget-exhausted]}]
  - {name: small, url: "${small.url}"}
`);
    const state = join(mkdtempSync(join(tmpdir(), 'breakwater-state-')), 'state.json');
    const args = ['--policy', policy, '--state-file', state];
    await awayFromTheHour();

    const first = await startSidecarProcess(t, args, policy);
    // Turn n bills 400 x (2n - 1) input + 400 output: 800, 1600, 2400, 3200 (8,000 in all), then 4,000 would be 12,000.
    const stopped = await agentLoop(`${first.dataUrl}/metered/v1/chat/completions`, 20, (turn) => turn % 2 === 1);
    assert.deepEqual(stopped.map((x) => x.status), [200, 200, 200, 200, 200, 429], 'the fifth turn (to 12,000) still fits the estimate; the sixth is refused');
    const refusal = stopped.at(-1)!;
    assert.equal(refusal.code, 'budget_exhausted');
    const untilHour = (HOUR - (Date.now() % HOUR)) / 1000;
    assert.ok(Math.abs(refusal.retryAfter - untilHour) <= 2, `Retry-After ${refusal.retryAfter} s is the time until the hour rolls (${untilHour.toFixed(0)} s)`);
    const billed = frontier.calls.reduce((sum, c) => sum + c.tokens, 0);
    assert.equal(billed, 800 + 1600 + 2400 + 3200 + 4000, 'spent from the usage each answer (plain or streamed) reported');
    const sentToFrontier = frontier.calls.length;

    const routed = await agentLoop(`${first.dataUrl}/routed/v1/chat/completions`, 8, () => false);
    assert.deepEqual(routed.map((x) => x.tier ?? 'routed'), ['routed', 'routed', 'routed', 'routed', 'routed', 'small', 'small', 'small'], 'once spent, the cheaper tier answers');
    assert.ok(routed.every((x) => x.status === 200));

    const status = (await (await fetch(`${first.adminUrl}/status`)).json()) as { budgets: { scope: string; upstream?: string; spent: { tokens: number }; limits: { tokens: number } }[] };
    assert.deepEqual(status.budgets.map((b) => [b.upstream, b.spent.tokens, b.limits.tokens]), [['metered', 12_000, 10_000], ['routed', 12_000, 10_000]]);
    const metrics = await (await fetch(`${first.adminUrl}/metrics`)).text();
    assert.match(metrics, /breakwater_budget_spent\{scope="upstream",upstream="metered",unit="tokens"\} 12000/);
    assert.match(metrics, /breakwater_budget_exhausted_total\{scope="upstream",upstream="routed"\} 3/);

    const saved = () => (JSON.parse(readFileSync(state, 'utf8')) as { budgets: { tokens: number }[] }).budgets.map((b) => b.tokens);
    await until('both spent budgets saved', () => existsSync(state) && saved().join() === '12000,12000');
    first.child.kill('SIGKILL');
    await first.exited;

    const second = await startSidecarProcess(t, args, policy);
    const afterRestart = await agentLoop(`${second.dataUrl}/metered/v1/chat/completions`, 3, () => false);
    assert.deepEqual(afterRestart.map((x) => [x.status, x.code]), [[429, 'budget_exhausted']], 'still spent after the restart');
    assert.equal(frontier.calls.length, sentToFrontier + 5, 'the restarted sidecar sent nothing more to the metered upstream');
    const rerouted = await agentLoop(`${second.dataUrl}/routed/v1/chat/completions`, 1, () => false);
    assert.equal(rerouted[0]!.tier, 'small');
  });
});

/** A request the model holds until the test answers it. */
interface Held {
  answer(contentType: string, text: string): void;
}

/** A model that hands each request to the test (`held`), or answers it at once with `auto` when that is set. */
async function startHeldModel(t: TestContext) {
  const held: Held[] = [];
  const model = { url: '', held, auto: undefined as (() => { type: string; text: string }) | undefined };
  const server: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const answer = (type: string, text: string) => void res.writeHead(200, { 'content-type': type }).end(text);
      const auto = model.auto?.();
      if (auto) answer(auto.type, auto.text);
      else held.push({ answer });
    });
  });
  model.url = await listen(server, { host: '127.0.0.1', port: 0 });
  // A failed test may leave requests held: their connections are closed, not waited for.
  t.after(() => new Promise<void>((r) => (server.close(() => r()), server.closeAllConnections())));
  return model;
}

const JSON_TYPE = 'application/json';
const SSE_TYPE = 'text/event-stream';

/** A Chat Completions answer with `text`, reporting `usage` (none when undefined). */
const chatAnswer = (text: string, usage?: { input: number; output: number }) =>
  usage ? openai.composeAnswer!('m', text, usage) : JSON.stringify({ id: 'chatcmpl-1', object: 'chat.completion', created: 1, model: 'm', choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: 'stop' }] });

/** The one budget /status shows for `upstream`. */
async function budgetOf(adminUrl: string, upstream: string) {
  const status = (await (await fetch(`${adminUrl}/status`)).json()) as { budgets: { upstream?: string; spent: { tokens: number }; reserved: { tokens: number } }[] };
  return status.budgets.find((b) => b.upstream === upstream)!;
}

/** The input a request is reserved and charged when its answer reports none: ~4 bytes of its body a token. */
const inputEstimate = (body: string) => Math.ceil(Buffer.byteLength(body) / 4);

/** An Anthropic Messages usage object as the SDK types it (`Usage`): the prompt cache's counts are apart from input_tokens. */
const anthropicUsage = (input: number, written: number, read: number, output: number) => ({ input_tokens: input, cache_creation_input_tokens: written, cache_read_input_tokens: read, output_tokens: output });

const sseEvent = (type: string, data: object) => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;

/** An Anthropic stream: message_start with `startUsage`, one text delta, message_delta with `deltaUsage`, message_stop. */
const anthropicStream = (startUsage: object, deltaUsage: object) =>
  [
    sseEvent('message_start', { message: { id: 'msg_1', type: 'message', role: 'assistant', model: 'claude-sonnet-4-5', content: [], stop_reason: null, stop_sequence: null, usage: startUsage } }),
    sseEvent('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }),
    sseEvent('content_block_delta', { index: 0, delta: { type: 'text_delta', text: 'from the cached document' } }),
    sseEvent('content_block_stop', { index: 0 }),
    sseEvent('message_delta', { delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: deltaUsage }),
    sseEvent('message_stop', {}),
  ].join('');

const anthropicAnswer = (usage: object) =>
  JSON.stringify({ id: 'msg_1', type: 'message', role: 'assistant', model: 'claude-sonnet-4-5', content: [{ type: 'text', text: 'from the cached document' }], stop_reason: 'end_turn', stop_sequence: null, usage });

describe('prompt-cache tokens on a real sidecar', () => {
  it('charges an Anthropic answer its cache writes and reads as input, plain and streamed, and counts them in breakwater_tokens_total', async (t) => {
    const model = await startHeldModel(t);
    const CACHED = 4000;
    // Each answer: 5 uncached input tokens, 4,000 written to or read from the cache, 20 out: 4,025 tokens.
    const answers = [
      { type: JSON_TYPE, text: anthropicAnswer(anthropicUsage(5, CACHED, 0, 20)) },
      // The classic stream: message_delta reports only the output.
      { type: SSE_TYPE, text: anthropicStream(anthropicUsage(5, 0, CACHED, 1), { output_tokens: 20 }) },
      // The current stream: message_delta repeats every count, cumulative (MessageDeltaUsage).
      { type: SSE_TYPE, text: anthropicStream(anthropicUsage(5, 0, CACHED, 1), anthropicUsage(5, 0, CACHED, 20)) },
      { type: JSON_TYPE, text: anthropicAnswer(anthropicUsage(5, 0, CACHED, 20)) },
    ];
    let answered = 0;
    model.auto = () => answers[Math.min(answered++, answers.length - 1)]!;
    const sidecar = await spawnSidecar(t, `upstreams:\n  - {name: claude, url: "${model.url}", api: anthropic, budget: {window: hour, tokens: 10000}}\n`);
    await awayFromTheHour();
    const ask = (stream: boolean) =>
      post(
        `${sidecar.dataUrl}/claude/v1/messages`,
        JSON.stringify({ model: 'claude-sonnet-4-5', max_tokens: 20, stream, system: [{ type: 'text', text: 'the long document', cache_control: { type: 'ephemeral' } }], messages: [{ role: 'user', content: 'what does it say?' }] }),
        { 'x-api-key': 'k', 'anthropic-version': '2023-06-01' },
      );
    const statuses = [(await ask(false)).status, (await ask(true)).status, (await ask(true)).status];
    assert.deepEqual(statuses, [200, 200, 200]);
    assert.equal((await budgetOf(sidecar.adminUrl, 'claude')).spent.tokens, 3 * (5 + CACHED + 20), 'input_tokens + cache_creation_input_tokens + cache_read_input_tokens + output_tokens, each answer');
    const refused = await ask(false);
    assert.equal(refused.status, 429, 'past 10,000 tokens, the next request is refused');
    assert.equal(refused.json().error.code, 'budget_exhausted');
    assert.equal(answered, 3);
    const metrics = await (await fetch(`${sidecar.adminUrl}/metrics`)).text();
    assert.match(metrics, new RegExp(`breakwater_tokens_total\\{[^}]*upstream="claude"[^}]*type="input"\\} ${3 * (5 + CACHED)}\\n`));
  });
});

describe('requests without max_tokens on a real sidecar', () => {
  /** A request without max_tokens. */
  const UNCAPPED = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'write the whole report' }] });
  const askUncapped = (url: string) => post(url, UNCAPPED);

  it('reserves 4,096 output tokens for each, so 20 at once against a 10,000-token budget are not all admitted', async (t) => {
    const model = await startHeldModel(t);
    const sidecar = await spawnSidecar(t, `upstreams:\n  - {name: agents, url: "${model.url}", budget: {window: hour, tokens: 10000}}\n`);
    await awayFromTheHour();
    const url = `${sidecar.dataUrl}/agents/v1/chat/completions`;
    let refusedSoFar = 0;
    const replies = Array.from({ length: 20 }, () => askUncapped(url).then((r) => (r.status === 429 && refusedSoFar++, r)));
    await until('every request admitted or refused', () => model.held.length + refusedSoFar, (n) => n === 20);
    const admitted = model.held.length;
    for (const h of model.held.splice(0)) h.answer(JSON_TYPE, chatAnswer('report', { input: 20, output: 5000 }));
    const done = await Promise.all(replies);
    // Two reserve 4,096 + their input; the third, what is left; the rest find nothing left while those are in flight.
    assert.equal(admitted, 3, 'admitted while their reservations fit');
    const refused = done.filter((r) => r.status === 429);
    assert.equal(refused.length, 17);
    assert.ok(refused.every((r) => r.json().error.code === 'budget_exhausted' && r.headers.get('retry-after') === '1'), 'refused while requests in flight hold the rest: ask again in a second');
    const budget = await budgetOf(sidecar.adminUrl, 'agents');
    assert.deepEqual([budget.spent.tokens, budget.reserved.tokens], [3 * 5020, 0], 'settled to the usage the answers reported: over the limit only by what the three answered past their reservations');
  });

  it('admits a small uncapped request when less than 4,096 tokens are left, one at a time, and settles it to what it used', async (t) => {
    const model = await startHeldModel(t);
    const sidecar = await spawnSidecar(t, `upstreams:\n  - {name: agents, url: "${model.url}", budget: {window: hour, tokens: 10000}}\n`);
    await awayFromTheHour();
    const url = `${sidecar.dataUrl}/agents/v1/chat/completions`;
    model.auto = () => ({ type: JSON_TYPE, text: chatAnswer('long', { input: 8000, output: 1000 }) });
    assert.equal((await post(url, JSON.stringify({ model: 'm', max_tokens: 1000, messages: [{ role: 'user', content: 'the long one' }] }))).status, 200);
    assert.equal((await budgetOf(sidecar.adminUrl, 'agents')).spent.tokens, 9000);

    model.auto = undefined;
    const small = askUncapped(url);
    await until('the small request reached the model', () => model.held.length === 1);
    assert.equal((await budgetOf(sidecar.adminUrl, 'agents')).reserved.tokens, 1000, 'it holds what is left, not 4,096');
    model.auto = () => ({ type: JSON_TYPE, text: chatAnswer('no', { input: 20, output: 5000 }) });
    const meanwhile = await askUncapped(url);
    assert.deepEqual([meanwhile.status, meanwhile.headers.get('retry-after')], [429, '1'], 'another at the same time waits for it');
    model.held.pop()!.answer(JSON_TYPE, chatAnswer('ok', { input: 20, output: 30 }));
    assert.equal((await small).status, 200);
    const settled = await budgetOf(sidecar.adminUrl, 'agents');
    assert.deepEqual([settled.spent.tokens, settled.reserved.tokens], [9050, 0]);
    model.auto = () => ({ type: JSON_TYPE, text: chatAnswer('ok', { input: 20, output: 30 }) });
    assert.equal((await askUncapped(url)).status, 200, 'once it settled, the next is admitted');
  });

  it('charges a plain answer that reports no usage its size, at ~4 bytes a token', async (t) => {
    const model = await startHeldModel(t);
    const sidecar = await spawnSidecar(t, `upstreams:\n  - {name: local, url: "${model.url}", budget: {window: hour, tokens: 100000}}\n`);
    await awayFromTheHour();
    const text = 'word '.repeat(2000);
    const answer = chatAnswer(text);
    model.auto = () => ({ type: JSON_TYPE, text: answer });
    const res = await askUncapped(`${sidecar.dataUrl}/local/v1/chat/completions`);
    assert.equal(res.status, 200);
    assert.equal(res.text, answer);
    assert.equal((await budgetOf(sidecar.adminUrl, 'local')).spent.tokens, inputEstimate(UNCAPPED) + Math.ceil(Buffer.byteLength(answer) / 4), 'its input and its answer estimated');
  });
});
