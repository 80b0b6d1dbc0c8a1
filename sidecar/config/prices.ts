/**
 * An upstream's per-model prices (policy `prices`), as the cost of a request's
 * tokens. A model no entry names costs the highest listed price, so an
 * unlisted model cannot slip past a cost budget; an upstream without prices
 * (a self-hosted model) costs nothing.
 */
import type { UpstreamSpec } from '../../api/index.js';
import type { TokenUsage } from '../proxy/dialects/dialect.js';

interface Price {
  input: number;
  output: number;
}

export interface PriceList {
  /** The entries as the policy lists them (so a change of prices is a change of the upstream's settings). */
  readonly listed: UpstreamSpec['prices'];
  /** The cost of `usage` tokens of `model`, in the prices' currency. */
  costOf(model: string | undefined, usage: TokenUsage): number;
}

const PER = 1_000_000;

export function compilePrices(entries: UpstreamSpec['prices']): PriceList {
  if (entries.length === 0) return { listed: entries, costOf: () => 0 };
  const exact = new Map<string, Price>();
  // Longest prefix first, so the first that matches is the most specific.
  const prefixes: { prefix: string; price: Price }[] = [];
  let highest: Price = { input: 0, output: 0 };
  for (const entry of entries) {
    const price = { input: Number(entry.input), output: Number(entry.output) };
    highest = { input: Math.max(highest.input, price.input), output: Math.max(highest.output, price.output) };
    if (entry.model.endsWith('*')) prefixes.push({ prefix: entry.model.slice(0, -1), price });
    else if (!exact.has(entry.model)) exact.set(entry.model, price);
  }
  prefixes.sort((a, b) => b.prefix.length - a.prefix.length);
  const priceOf = (model: string | undefined): Price =>
    (model !== undefined && (exact.get(model) ?? prefixes.find((p) => model.startsWith(p.prefix))?.price)) || highest;
  return {
    listed: entries,
    costOf(model, usage) {
      const price = priceOf(model);
      return (usage.input * price.input + usage.output * price.output) / PER;
    },
  };
}
