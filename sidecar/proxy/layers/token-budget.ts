/**
 * Token and cost budgets (policy `budget`, per upstream and for the whole
 * policy): before a tier's request is sent, it reserves what it may use from
 * every budget it spends from, all or none; over a limit it is answered 429
 * budget_exhausted with a Retry-After until the window rolls, as failure
 * `budget-exhausted`, which a fallback tier may take. Once the answer is in
 * (for a stream, when it ends) the reservation is settled with the usage the
 * answer reports, or the estimate when it reports none; a failed answer costs
 * nothing.
 */
import type { BudgetBook } from '../../budget-book.js';
import type { Metrics } from '../../metrics.js';
import type { Spend } from '../../resilience/index.js';
import type { TokenUsage } from '../dialects/dialect.js';
import { expectedUsage } from '../expected-usage.js';
import { localError, type Layer } from '../handler.js';
import { holding, type CallEnd } from '../holding.js';

const NOTHING: TokenUsage = { input: 0, output: 0 };

/** The tokens a call that ended so is charged: what its answer reports, else what was expected; nothing for a failure. */
function usedBy(end: CallEnd, expected: TokenUsage): TokenUsage {
  switch (end.kind) {
    case 'threw':
      return NOTHING;
    case 'stream-ended':
      // A stream that broke or was given up was generating: charged its reservation, or what it sent if that was more.
      if (end.end.kind !== 'complete') return { input: expected.input, output: Math.max(expected.output, Math.ceil((end.end.outputChars ?? 0) / 4)) };
      // A stream that reported no usage is charged its input as estimated and its output by what it sent (~4 characters a token).
      return end.end.usage ?? { input: expected.input, output: Math.ceil((end.end.outputChars ?? 0) / 4) };
    case 'returned':
      return end.outcome.kind === 'answer' && end.outcome.failure === undefined ? (end.outcome.usage ?? expected) : NOTHING;
  }
}

export interface TokenBudgetDeps {
  budgets(): BudgetBook;
  metrics: Metrics;
  /** Called after any spending changed, so it can be kept across a restart. */
  spent(): void;
}

export function tokenBudget(deps: TokenBudgetDeps): Layer {
  return (inner) => (req, ctx) => {
    const spending = deps.budgets().spendingFor(req.upstream.config.name);
    if (spending.length === 0) return inner(req, ctx);
    const { prices } = req.upstream.config;
    const expected = expectedUsage(req);
    const reserved: Spend = { tokens: expected.input + expected.output, cost: prices.costOf(req.model, expected) };
    for (let i = 0; i < spending.length; i++) {
      const admission = spending[i]!.budget.tryReserve(reserved);
      if (admission.ok) continue;
      for (const taken of spending.slice(0, i)) taken.budget.settle(reserved, { tokens: 0, cost: 0 });
      const { scope, upstream } = spending[i]!;
      deps.metrics.budgetExhausted.inc({ scope, upstream: upstream ?? '' });
      const whose = scope === 'policy' ? 'the policy\'s' : `upstream ${upstream}'s`;
      return Promise.resolve(localError(req, 429, 'budget_exhausted', `${whose} ${admission.limit} budget for this ${spending[i]!.budget.snapshot().window} is spent`, 'budget-exhausted', admission.retryAfterMs));
    }
    return holding(
      () => inner(req, ctx),
      (end) => {
        const used = usedBy(end, expected);
        const charged: Spend = { tokens: used.input + used.output, cost: prices.costOf(req.model, used) };
        for (const { budget } of spending) budget.settle(reserved, charged);
        deps.spent();
      },
    );
  };
}
