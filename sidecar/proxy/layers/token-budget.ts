/**
 * Token and cost budgets (policy `budget`, per upstream and for the whole
 * policy; each the pod's, or the fleet's, kept in the shared store through
 * leases: fleet/, where a reservation that the pod's lease cannot cover
 * waits for the store, at most 50 ms): before a tier's request is sent, it
 * reserves what it may use from every budget it spends from, all or none: its input (~4 bytes a token) and
 * its max_tokens, or, without one, UNCAPPED_OUTPUT_TOKENS, or what is left
 * when that is less. Over a limit it is answered 429 budget_exhausted with a
 * Retry-After until the window rolls, as failure `budget-exhausted`, which a
 * fallback tier may take. Once the answer is in (for a stream, when it ends)
 * the reservation is settled with the usage the answer reports, or an
 * estimate from its text when it reports none; a failed answer costs nothing.
 *
 * Cost is the upstream's price per input and output token. Prompt-cache
 * tokens (Anthropic's cache writes and reads) count as input at the input
 * price: reads, which Anthropic bills at a tenth of it, are over-charged, and
 * writes, billed at 1.25x (5-minute cache) or 2x (1-hour cache), under-charged
 * until the prefix is read back once or twice; for a cap, the error is on the
 * safe side for any prefix that is reused.
 */
import type { BudgetBook, KeptBudget } from '../../budget-book.js';
import type { PriceList } from '../../config/prices.js';
import type { Metrics } from '../../metrics.js';
import type { BudgetAdmission, BudgetRefused, Spend } from '../../resilience/index.js';
import type { TokenUsage } from '../dialects/dialect.js';
import { expectedUsage, generatesOutput, tokensOfText, UNCAPPED_OUTPUT_TOKENS } from '../expected-usage.js';
import { localError, type Layer, type Outcome } from '../handler.js';
import { holding, type CallEnd } from '../holding.js';

const NOTHING: TokenUsage = { input: 0, output: 0 };

/**
 * The tokens a call that ended so is charged: what its answer reports, else an estimate; nothing for a failure.
 * `mostOutput`: the most output its answer can hold (its max_tokens; 0 on a path that generates none; else Infinity).
 */
function usedBy(end: CallEnd, reserved: TokenUsage, mostOutput: number): TokenUsage {
  switch (end.kind) {
    case 'threw':
      return NOTHING;
    case 'stream-ended':
      // A stream that broke or was given up was generating: charged its reservation, or what it sent if that was more.
      if (end.end.kind !== 'complete') return { input: reserved.input, output: Math.max(reserved.output, tokensOfText(end.end.outputChars ?? 0)) };
      // A stream that reported no usage is charged its input as estimated and its output by what it sent (~4 characters a token).
      return end.end.usage ?? { input: reserved.input, output: tokensOfText(end.end.outputChars ?? 0) };
    case 'returned': {
      const { outcome } = end;
      if (outcome.kind !== 'answer' || outcome.failure !== undefined) return NOTHING;
      // A plain answer that reported no usage is charged its output by its size, ~4 bytes a token, up to its cap:
      // the JSON around its text (a few hundred bytes) counts too, but it is not parsed again for its text alone.
      return outcome.usage ?? { input: reserved.input, output: Math.min(mostOutput, tokensOfText(outcome.body.length)) };
    }
  }
}

/**
 * The output a request without max_tokens reserves: UNCAPPED_OUTPUT_TOKENS, or what every budget has left
 * past its input when that is less. Near a limit such a request is still let in, holding all that is left,
 * so the next waits for it to settle (429 with Retry-After: 1) instead of both spending past the limit. At
 * least one token, so a spent budget refuses it.
 */
function uncappedOutput(spending: readonly KeptBudget[], prices: PriceList, model: string | undefined, input: number): number {
  let room = UNCAPPED_OUTPUT_TOKENS;
  const inputCost = prices.costOf(model, { input, output: 0 });
  const outputTokenCost = prices.costOf(model, { input: 0, output: 1 });
  for (const { budget } of spending) {
    const { limits, spent, reserved } = budget.snapshot();
    if (limits.tokens > 0) room = Math.min(room, limits.tokens - spent.tokens - reserved.tokens - input);
    if (limits.cost > 0 && outputTokenCost > 0) room = Math.min(room, Math.floor((limits.cost - spent.cost - reserved.cost - inputCost) / outputTokenCost));
  }
  return Math.max(1, room);
}

/** What a refusal says, by why it was refused (`budget`: "the policy's fleet's tokens budget for this hour"). */
function refusalMessage(budget: string, reason: BudgetRefused | undefined, fleet: boolean): string {
  switch (reason) {
    case 'too-large':
      return `this request asks for more than ${budget} has left`;
    case 'held':
      return `the rest of ${budget} is reserved by requests in flight${fleet ? ' or held in other pods\' leases' : ''}; ask again in a second`;
    case 'slow':
      return `the shared store did not answer within 50 ms for ${budget} (it is not spent); ask again in a second`;
    case 'unheard':
      return `the shared store has not answered this sidecar yet for ${budget}; ask again in a second`;
    default:
      return `${budget} is spent`;
  }
}

export interface TokenBudgetDeps {
  budgets(): BudgetBook;
  metrics: Metrics;
  /** Called after any spending changed, so it can be kept across a restart. */
  spent(): void;
}

interface Refusal {
  by: KeptBudget;
  admission: Extract<BudgetAdmission, { ok: false }>;
}

/**
 * Reserves `amount` from every budget in `spending` from `from` on, all or none: undefined, or the first that
 * refused. A pod's budget answers at once; a fleet's may wait for its shared store (at most 50 ms).
 */
function reserveAll(spending: readonly KeptBudget[], amount: Spend, from = 0): Refusal | undefined | Promise<Refusal | undefined> {
  const refuse = (i: number, admission: Extract<BudgetAdmission, { ok: false }>): Refusal => {
    for (const taken of spending.slice(0, i)) taken.budget.settle(amount, { tokens: 0, cost: 0 });
    return { by: spending[i]!, admission };
  };
  for (let i = from; i < spending.length; i++) {
    const admission = spending[i]!.budget.tryReserve(amount);
    if (admission instanceof Promise) return admission.then((a) => (a.ok ? reserveAll(spending, amount, i + 1) : refuse(i, a)));
    if (!admission.ok) return refuse(i, admission);
  }
  return undefined;
}

export function tokenBudget(deps: TokenBudgetDeps): Layer {
  return (inner) => (req, ctx) => {
    const spending = deps.budgets().spendingFor(req.upstream.config.name);
    if (spending.length === 0) return inner(req, ctx);
    const { prices } = req.upstream.config;
    const expected = expectedUsage(req);
    const uncapped = req.maxTokens === undefined && generatesOutput(ctx.dialect);
    const reservation: TokenUsage = uncapped ? { input: expected.input, output: uncappedOutput(spending, prices, req.model, expected.input) } : expected;
    const mostOutput = uncapped ? Infinity : expected.output;
    const reserved: Spend = { tokens: reservation.input + reservation.output, cost: prices.costOf(req.model, reservation) };
    const admitted = (refusal: Refusal | undefined): Promise<Outcome> => {
      if (refusal) {
        const { by: { scope, upstream, budget }, admission } = refusal;
        deps.metrics.budgetExhausted.inc({ scope, upstream: upstream ?? '' });
        const whose = scope === 'policy' ? 'the policy\'s' : `upstream ${upstream}'s`;
        const fleet = 'fleet' in budget ? ' fleet\'s' : '';
        const message = refusalMessage(`${whose}${fleet} ${admission.limit} budget for this ${budget.snapshot().window}`, admission.reason, fleet !== '');
        return Promise.resolve(localError(req, 429, 'budget_exhausted', message, 'budget-exhausted', admission.retryAfterMs));
      }
      return call();
    };
    const call = () => holding(
      () => inner(req, ctx),
      (end) => {
        const used = usedBy(end, reservation, mostOutput);
        const charged: Spend = { tokens: used.input + used.output, cost: prices.costOf(req.model, used) };
        for (const { budget } of spending) budget.settle(reserved, charged);
        deps.spent();
      },
    );
    const refusal = reserveAll(spending, reserved);
    return refusal instanceof Promise ? refusal.then(admitted) : admitted(refusal);
  };
}
