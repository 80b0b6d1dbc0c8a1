/**
 * Token and cost budgets: the budget's state machine on a ManualClock
 * (reserve, refuse, settle, window roll, restore), property-tested for what it
 * admits; per-model prices; the budget book across configs; and the layer,
 * alone and under the fallback chain, with what it reserves for a request
 * without max_tokens and charges an answer without usage.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { validatePolicy } from '../../api/validate-policy.js';
import { BudgetBook } from '../../sidecar/budget-book.js';
import { compilePrices } from '../../sidecar/config/prices.js';
import { passThrough } from '../../sidecar/proxy/dialects/generic.js';
import { openai } from '../../sidecar/proxy/dialects/openai.js';
import { UNCAPPED_OUTPUT_TOKENS } from '../../sidecar/proxy/expected-usage.js';
import type { Handler, Outcome } from '../../sidecar/proxy/handler.js';
import { fallback } from '../../sidecar/proxy/layers/fallback.js';
import { tokenBudget } from '../../sidecar/proxy/layers/token-budget.js';
import { ResponseCache } from '../../sidecar/proxy/answers/response-cache.js';
import { TokenBudget } from '../../sidecar/resilience/token-budget.js';
import { answer, compile, contextAt, DrivenStream, innerGiving, localFailure, ManualClock, metrics, nextOf, requestTo, streamOf, upstreamOf } from '../support/layer-kit.js';

/** 12:00 UTC on a day, so an hour window ends 60 minutes later. */
const NOON = Date.UTC(2026, 10, 24, 12);
const MINUTE = 60_000;
const nothing = { tokens: 0, cost: 0 };

describe('a token budget', () => {
  it('admits while what is spent and reserved fits, and refuses with the time until the window rolls', () => {
    const clock = new ManualClock(NOON + 15 * MINUTE);
    const budget = new TokenBudget({ window: 'hour', tokens: 10_000, cost: 0 }, clock);
    assert.deepEqual(budget.tryReserve({ tokens: 6000, cost: 0 }), { ok: true });
    budget.settle({ tokens: 6000, cost: 0 }, { tokens: 9000, cost: 0 }); // used more than reserved
    assert.deepEqual(budget.tryReserve({ tokens: 1001, cost: 0 }), { ok: false, limit: 'tokens', retryAfterMs: 45 * MINUTE });
    assert.deepEqual(budget.tryReserve({ tokens: 1000, cost: 0 }), { ok: true }, 'exactly the limit fits');
    assert.equal(budget.tryReserve({ tokens: 1, cost: 0 }).ok, false);
    clock.advance(45 * MINUTE);
    assert.deepEqual(budget.snapshot().spent, nothing, 'the window rolled');
    assert.equal(budget.tryReserve({ tokens: 8999, cost: 0 }).ok, true, 'the reservation in flight carried over');
    assert.equal(budget.tryReserve({ tokens: 2, cost: 0 }).ok, false);
  });

  it('says to ask again soon when only reservations in flight stand in the way', () => {
    const clock = new ManualClock(NOON);
    const budget = new TokenBudget({ window: 'day', tokens: 100, cost: 0 }, clock);
    assert.equal(budget.tryReserve({ tokens: 90, cost: 0 }).ok, true);
    assert.deepEqual(budget.tryReserve({ tokens: 20, cost: 0 }), { ok: false, limit: 'tokens', retryAfterMs: 1000 });
    budget.settle({ tokens: 90, cost: 0 }, { tokens: 10, cost: 0 });
    assert.equal(budget.tryReserve({ tokens: 20, cost: 0 }).ok, true);
    assert.equal(budget.snapshot().windowEndsAt, Date.UTC(2026, 10, 25), 'a day window ends at midnight UTC');
  });

  it('limits cost as well as tokens, whichever runs out first', () => {
    const clock = new ManualClock(NOON);
    const budget = new TokenBudget({ window: 'hour', tokens: 0, cost: 1 }, clock);
    assert.equal(budget.tryReserve({ tokens: 1e9, cost: 0.6 }).ok, true, 'no token limit');
    assert.deepEqual(budget.tryReserve({ tokens: 1, cost: 0.5 }), { ok: false, limit: 'cost', retryAfterMs: 1000 });
  });

  it('keeps what was spent when the wall clock steps back, or the limits change, and restores only the current window', () => {
    const clock = new ManualClock(NOON + 30 * MINUTE);
    const budget = new TokenBudget({ window: 'hour', tokens: 100, cost: 0 }, clock);
    budget.restore({ windowStart: NOON - 60 * MINUTE, tokens: 99, cost: 0 });
    assert.deepEqual(budget.snapshot().spent, nothing, 'spent in an earlier window');
    budget.restore({ windowStart: NOON, tokens: 99, cost: 0 });
    assert.deepEqual(budget.snapshot().spent, { tokens: 99, cost: 0 });
    budget.reconfigure({ window: 'hour', tokens: 200, cost: 0 });
    assert.equal(budget.snapshot().spent.tokens, 99, 'a new limit does not refill the budget');
    let wall = NOON + 30 * MINUTE;
    const stepping = Object.assign(new ManualClock(), { wallTime: () => wall });
    const stepped = new TokenBudget({ window: 'hour', tokens: 100, cost: 0 }, stepping);
    stepped.settle(nothing, { tokens: 50, cost: 0 });
    wall = NOON - 5 * MINUTE;
    assert.equal(stepped.snapshot().spent.tokens, 50, 'a clock stepped back does not refill it');
  });

  it('never admits past a limit, and settles back to zero reserved, whatever the requests (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 10_000 }),
        fc.array(fc.record({ reserve: fc.integer({ min: 0, max: 3000 }), use: fc.integer({ min: 0, max: 3000 }), advance: fc.integer({ min: 0, max: 20 * MINUTE }), settleNow: fc.boolean() }), { maxLength: 60 }),
        (limit, requests) => {
          const clock = new ManualClock(NOON);
          const budget = new TokenBudget({ window: 'hour', tokens: limit, cost: 0 }, clock);
          const open: { reserve: number; use: number }[] = [];
          for (const r of requests) {
            clock.advance(r.advance);
            const admission = budget.tryReserve({ tokens: r.reserve, cost: 0 });
            const { spent, reserved } = budget.snapshot();
            if (admission.ok) {
              open.push(r);
              // Spending past the limit comes only from answers that used more than they reserved.
              assert.ok(reserved.tokens <= limit);
            } else {
              assert.ok(spent.tokens + reserved.tokens + r.reserve > limit);
              assert.ok(admission.retryAfterMs > 0 && admission.retryAfterMs <= 60 * MINUTE);
            }
            if (r.settleNow && open.length > 0) {
              const done = open.shift()!;
              budget.settle({ tokens: done.reserve, cost: 0 }, { tokens: Math.min(done.use, done.reserve), cost: 0 });
            }
          }
          for (const done of open.splice(0)) budget.settle({ tokens: done.reserve, cost: 0 }, nothing);
          assert.equal(budget.snapshot().reserved.tokens, 0);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('prices', () => {
  const prices = compilePrices([
    { model: 'gpt-4o', input: '2.50', output: '10' },
    { model: 'gpt-4o*', input: '5', output: '15' },
    { model: 'gpt-4o-mini*', input: '0.15', output: '0.60' },
  ]);
  const million = { input: 1_000_000, output: 1_000_000 };
  it('prices a model by its exact name, else its longest prefix, else the highest listed price', () => {
    assert.equal(prices.costOf('gpt-4o', million), 12.5);
    assert.equal(prices.costOf('gpt-4o-mini-2024-07-18', million), 0.75);
    assert.equal(prices.costOf('gpt-4o-2024-08-06', million), 20);
    assert.equal(prices.costOf('o3', million), 20, 'an unlisted model costs the most, not nothing');
    assert.equal(prices.costOf(undefined, { input: 1000, output: 0 }), 0.005);
    assert.equal(compilePrices([]).costOf('anything', million), 0, 'a self-hosted upstream costs nothing');
  });

  it('are checked by the policy: amounts as decimals, and a cost budget needs prices', () => {
    const bad = validatePolicy({ upstreams: [{ name: 'a', url: 'http://x', prices: [{ model: 'm', input: '1e3', output: '1' }] }] });
    assert.ok(!bad.ok && bad.problems.some((p) => p.path === 'spec.upstreams[0].prices[0].input' && /decimal amount/.test(p.message)));
    const unpriced = validatePolicy({ upstreams: [{ name: 'a', url: 'http://x', budget: { cost: '5' } }], budget: { cost: '10' } });
    assert.deepEqual(!unpriced.ok && unpriced.problems.map((p) => p.path), ['spec.upstreams[0].budget.cost', 'spec.budget.cost']);
    assert.ok(validatePolicy({ upstreams: [{ name: 'a', url: 'http://x', prices: [{ model: '*', input: '1', output: '2' }], budget: { window: 'day', tokens: 5, cost: '0.5' } }] }).ok);
  });
});

const BUDGETED = {
  budget: { tokens: 1000 },
  upstreams: [
    { name: 'primary', url: 'http://127.0.0.1:9', budget: { tokens: 300 }, fallback: [{ upstream: 'cheap', when: ['budget-exhausted'] }] },
    { name: 'cheap', url: 'http://127.0.0.1:9' },
    { name: 'strict', url: 'http://127.0.0.1:9', budget: { tokens: 300 }, fallback: [{ upstream: 'cheap', when: ['unavailable'] }] },
  ],
};

function budgetRig(spec: object = BUDGETED) {
  const clock = new ManualClock(NOON);
  const config = compile(spec);
  const book = new BudgetBook(clock);
  book.configure(config.budget, new Map([...config.upstreams].map(([n, u]) => [n, u.budget])));
  const up = (name: string) => upstreamOf(clock, {}, spec, name);
  let saves = 0;
  const layer = tokenBudget({ budgets: () => book, metrics, spent: () => saves++ });
  return { clock, book, up, layer, saves: () => saves };
}

/** A request with a body of `bytes` bytes (~bytes/4 input tokens) and max_tokens. */
const sized = (bytes: number, maxTokens?: number) => ({ body: Buffer.alloc(bytes, 'x'), maxTokens });

describe('the token budget layer', () => {
  it('charges what answers report, refuses 429 budget_exhausted without calling the upstream once spent, and asks for the kept state to be saved', async () => {
    const { clock, book, up, layer, saves } = budgetRig();
    const primary = up('primary');
    const inner = innerGiving(answer(200, undefined, '{"usage":{"prompt_tokens":100,"completion_tokens":150}}'));
    // answer() carries no parsed usage: the attempt layer reads it; here the outcome says it.
    const reporting = innerGiving({ ...answer(), usage: { input: 100, output: 150 } });
    const first = await layer(reporting)(requestTo(primary, sized(40, 50)), contextAt(clock));
    assert.equal(first.kind, 'answer');
    assert.deepEqual(book.get({ scope: 'upstream', upstream: 'primary' })!.snapshot().spent, { tokens: 250, cost: 0 });
    assert.deepEqual(book.get({ scope: 'policy' })!.snapshot().spent, { tokens: 250, cost: 0 }, 'the policy\'s budget is spent from too');
    const refused = await layer(inner)(requestTo(primary, sized(40, 50)), contextAt(clock));
    assert.ok(refused.kind === 'local');
    assert.equal(refused.status, 429);
    assert.equal(refused.code, 'budget_exhausted');
    assert.equal(refused.failure, 'budget-exhausted');
    assert.equal(refused.retryAfterMs, 60 * MINUTE);
    assert.match(refused.message, /upstream primary's tokens budget for this hour is spent/);
    assert.equal(inner.calls.length, 0);
    assert.deepEqual(book.get({ scope: 'policy' })!.snapshot().reserved, nothing, 'the policy reservation taken before the refusal was given back');
    assert.equal(saves(), 1);
  });

  it('charges the estimate for an answer without usage and for a stream that breaks, and nothing for a failure', async () => {
    const { clock, book, up, layer } = budgetRig();
    const cheap = up('cheap');
    await layer(innerGiving(answer(503, 'overloaded')))(requestTo(cheap, sized(400, 100)), contextAt(clock));
    await layer(innerGiving(localFailure('timeout')))(requestTo(cheap, sized(400, 100)), contextAt(clock));
    assert.deepEqual(book.get({ scope: 'policy' })!.snapshot().spent, nothing);
    await layer(innerGiving(answer()))(requestTo(cheap, sized(400, 100)), contextAt(clock));
    const answerTokens = Math.ceil(answer().body.length / 4);
    assert.equal(book.get({ scope: 'policy' })!.snapshot().spent.tokens, 100 + answerTokens, 'input 400/4 + the answer at ~4 bytes a token (under its max_tokens 100)');
    const stream = new DrivenStream();
    const streaming = await layer(innerGiving(streamOf(stream)))(requestTo(cheap, { ...sized(40, 10), stream: true }), contextAt(clock));
    assert.equal(book.get({ scope: 'policy' })!.snapshot().reserved.tokens, 20, 'held while the stream runs');
    assert.ok(streaming.kind === 'stream');
    stream.push('data: x\n\n');
    stream.fail();
    for (let r = await nextOf(streaming.body); r.kind === 'chunk'; r = await nextOf(streaming.body));
    assert.deepEqual(book.get({ scope: 'policy' })!.snapshot(), { ...book.get({ scope: 'policy' })!.snapshot(), spent: { tokens: 100 + answerTokens + 20, cost: 0 }, reserved: nothing });
  });

  it('charges a finished stream the usage it reported', async () => {
    const { clock, book, up, layer } = budgetRig();
    const stream = new DrivenStream();
    const streaming = await layer(innerGiving(streamOf(stream)))(requestTo(up('cheap'), { ...sized(40, 500), stream: true }), contextAt(clock));
    assert.ok(streaming.kind === 'stream');
    stream.end({ input: 7, output: 3 });
    for (let r = await nextOf(streaming.body); r.kind === 'chunk'; r = await nextOf(streaming.body));
    assert.deepEqual(book.get({ scope: 'policy' })!.snapshot().spent, { tokens: 10, cost: 0 });
  });

  it('under the chain: a spent budget goes to the tier whose when lists budget-exhausted, and nowhere else', async () => {
    const { clock, up, layer } = budgetRig();
    const tiers = new Map([['cheap', up('cheap')]]);
    const chain = (inner: ReturnType<typeof innerGiving>) => fallback({ clock, metrics, upstream: (n) => tiers.get(n), cache: () => new ResponseCache({ ttlMs: 0, maxEntries: 0, maxBytes: 0, serveFresh: false }) })(layer(inner));
    const inner = innerGiving(answer());
    for (const name of ['primary', 'strict']) {
      const outcome = await chain(inner)(requestTo(up(name), sized(400, 300)), contextAt(clock)); // 400 tokens: over 300
      if (name === 'primary') assert.deepEqual([outcome.kind, inner.calls.map((r) => r.upstream.name)], ['answer', ['cheap']]);
      else assert.equal(outcome.kind === 'local' && outcome.code, 'budget_exhausted', 'unavailable does not include a spent budget');
    }
    assert.equal(inner.calls.length, 1);
  });

  it('keeps what was spent across a new config of the same scope, and drops a budget the new config removes', () => {
    const clock = new ManualClock(NOON);
    const book = new BudgetBook(clock);
    book.configure({ window: 'hour', tokens: 100, cost: 0 }, new Map([['a', { window: 'hour', tokens: 50, cost: 0 }]]));
    book.get({ scope: 'policy' })!.settle(nothing, { tokens: 80, cost: 0 });
    book.configure({ window: 'hour', tokens: 120, cost: 0 }, new Map([['a', undefined]]));
    assert.equal(book.get({ scope: 'policy' })!.snapshot().spent.tokens, 80);
    assert.equal(book.get({ scope: 'upstream', upstream: 'a' }), undefined);
    assert.deepEqual(book.spendingFor('a').map((b) => b.scope), ['policy']);
  });
});

describe('the token budget layer, for requests without max_tokens', () => {
  const OPEN = { upstreams: [{ name: 'open', url: 'http://127.0.0.1:9', budget: { tokens: 10_000 } }] };
  const openBudget = (book: BudgetBook) => book.get({ scope: 'upstream', upstream: 'open' })!;

  /** An inner handler that holds each call until the test answers it. */
  function heldInner() {
    const waiting: ((outcome: Outcome) => void)[] = [];
    const handler: Handler = () => new Promise<Outcome>((resolve) => waiting.push(resolve));
    return { handler, waiting };
  }

  it('reserves UNCAPPED_OUTPUT_TOKENS of output while it runs, and settles to what the answer reports', async () => {
    const { clock, book, up, layer } = budgetRig(OPEN);
    const held = heldInner();
    const call = layer(held.handler)(requestTo(up('open'), sized(40)), contextAt(clock));
    assert.equal(openBudget(book).snapshot().reserved.tokens, 10 + UNCAPPED_OUTPUT_TOKENS);
    held.waiting[0]!({ ...answer(), usage: { input: 10, output: 5000 } });
    await call;
    assert.deepEqual([openBudget(book).snapshot().spent.tokens, openBudget(book).snapshot().reserved.tokens], [5010, 0], 'charged what it used, past its reservation');
  });

  it('near the limit holds what is left, so the next waits for it to settle; a spent budget refuses it until the window rolls', async () => {
    const { clock, book, up, layer } = budgetRig(OPEN);
    openBudget(book).settle(nothing, { tokens: 9000, cost: 0 });
    const held = heldInner();
    const first = layer(held.handler)(requestTo(up('open'), sized(40)), contextAt(clock));
    assert.equal(openBudget(book).snapshot().reserved.tokens, 1000, 'its input and the 990 left, not 4,096');
    const meanwhile = await layer(held.handler)(requestTo(up('open'), sized(40)), contextAt(clock));
    assert.deepEqual(meanwhile.kind === 'local' && [meanwhile.code, meanwhile.retryAfterMs], ['budget_exhausted', 1000]);
    assert.equal(held.waiting.length, 1);
    held.waiting[0]!({ ...answer(), usage: { input: 10, output: 30 } });
    await first;
    const next = layer(held.handler)(requestTo(up('open'), sized(40)), contextAt(clock));
    assert.equal(openBudget(book).snapshot().reserved.tokens, 960, 'admitted once the first settled');
    held.waiting[1]!({ ...answer(), usage: { input: 10, output: 2000 } });
    await next;
    const spent = await layer(held.handler)(requestTo(up('open'), sized(40)), contextAt(clock));
    assert.deepEqual(spent.kind === 'local' && [spent.code, spent.retryAfterMs], ['budget_exhausted', 60 * MINUTE]);
  });

  it('under a cost budget, reserves only the output the cost left pays for', async () => {
    // $1 an output token and nothing for input, so the arithmetic is exact.
    const PRICED = { upstreams: [{ name: 'open', url: 'http://127.0.0.1:9', prices: [{ model: '*', input: '0', output: '1000000' }], budget: { cost: '3000' } }] };
    const { clock, book, up, layer } = budgetRig(PRICED);
    const held = heldInner();
    void layer(held.handler)(requestTo(up('open'), sized(40)), contextAt(clock));
    assert.deepEqual(openBudget(book).snapshot().reserved, { tokens: 10 + 3000, cost: 3000 });
    const meanwhile = await layer(held.handler)(requestTo(up('open'), sized(40)), contextAt(clock));
    assert.deepEqual(meanwhile.kind === 'local' && [meanwhile.code, meanwhile.message.includes('cost budget')], ['budget_exhausted', true]);
    held.waiting[0]!({ ...answer(), usage: { input: 10, output: 5 } });
  });

  it('charges a plain answer that reports no usage its size at ~4 bytes a token; a path that generates nothing (embeddings) reserves and is charged no output', async () => {
    const { clock, book, up, layer } = budgetRig(OPEN);
    const text = answer(200, undefined, JSON.stringify({ choices: [{ message: { content: 'word '.repeat(2000) } }] }));
    await layer(innerGiving(text))(requestTo(up('open'), sized(40)), contextAt(clock));
    assert.equal(openBudget(book).snapshot().spent.tokens, 10 + Math.ceil(text.body.length / 4));
    const before = openBudget(book).snapshot().spent.tokens;
    const held = heldInner();
    const embeddings = { ...sized(400), appPath: '/v1/embeddings' };
    const call = layer(held.handler)(requestTo(up('open'), embeddings), contextAt(clock, { dialect: passThrough(openai, false) }));
    assert.equal(openBudget(book).snapshot().reserved.tokens, 100, 'its input only');
    held.waiting[0]!(answer(200, undefined, JSON.stringify({ data: [{ embedding: Array(1536).fill(0.0123) }] })));
    await call;
    assert.equal(openBudget(book).snapshot().spent.tokens - before, 100);
  });
});
