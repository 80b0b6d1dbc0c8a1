/** Durations ("250ms", "1m30s") and sizes ("10Mi") as the policy writes them, parsed to milliseconds and bytes. */

const DURATION_PART = /([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)/g;
const MS_PER_UNIT: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** The longest duration a policy may state: a timer holds at most 2^31-1 ms (596h is 2,145,600,000 ms). */
export const MAX_DURATION = '596h';

/** The longest duration string accepted ("1h30m15s500ms" is 13): checked before any parsing. */
export const MAX_DURATION_CHARS = 32;

/** Milliseconds in a duration string; throws on anything the schema's pattern would reject. */
export function parseDuration(text: string): number {
  if (text.length > MAX_DURATION_CHARS) throw new Error(`not a duration: longer than ${MAX_DURATION_CHARS} characters`);
  let total = 0;
  let consumed = 0;
  for (const match of text.matchAll(DURATION_PART)) {
    if (match.index !== consumed) break;
    total += Number(match[1]) * MS_PER_UNIT[match[2]!]!;
    consumed += match[0].length;
  }
  if (consumed === 0 || consumed !== text.length) throw new Error(`not a duration: ${JSON.stringify(text)}`);
  return total;
}

const BYTES_PER_SUFFIX: Record<string, number> = { '': 1, k: 1e3, M: 1e6, G: 1e9, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3 };

/** Bytes in a size string such as "512Ki", "10Mi" or "1000". */
export function parseSize(text: string): number {
  const match = /^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|k|M|G)?$/.exec(text);
  if (!match) throw new Error(`not a size: ${JSON.stringify(text)}`);
  return Math.floor(Number(match[1]) * BYTES_PER_SUFFIX[match[2] ?? '']!);
}

/** An amount of money, in whatever currency the policy's prices are in: a decimal such as 25 or 0.15. */
export const MONEY_PATTERN = '^[0-9]{1,9}(\\.[0-9]{1,6})?$';

/** An SLO objective: a percentage below 100 such as 99.9 ("0" = no objective; 100 would leave no error budget to burn). */
export const OBJECTIVE_PATTERN = '^[0-9]{1,2}(\\.[0-9]{1,3})?$';
