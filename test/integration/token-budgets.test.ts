/**
 * Token budgets on a real sidecar process against upstreams that report
 * usage: an agent-like loop, whose context grows each turn, runs past a
 * 10,000-token hour budget and is stopped with 429 budget_exhausted (on one
 * upstream) or handed to a cheaper tier (on another); the sidecar is killed
 * and restarted, and the budget is still spent.
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
import { startSidecarProcess, writePolicy } from '../support/sidecar-process.js';
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
