/**
 * Soft failures: a 200 whose content is unusable counts as invalid-response
 * (policy `validation`), so it can be retried, fall back and count against the
 * breaker instead of reaching the app as a success. Checked on plain answers;
 * a stream is already on its way to the app when it could be judged.
 */
import type { PolicySpec } from '../../../api/index.js';
import type { Dialect } from '../dialects/dialect.js';

export type ValidationSettings = PolicySpec['validation'];

const REFUSAL = /^\s*(I'm sorry|I am sorry|I apologi[sz]e|Sorry)[,.]?\s+(but\s+)?I\s+(can(no|')t|am unable to|won't)\b/i;

/** Why a 200 answer (parsed: undefined when it is not a JSON object) is unusable, or undefined when it is fine or not JSON at all: not ours to judge. */
export function invalidAnswer(dialect: Dialect, json: Record<string, any> | undefined, jsonMode: boolean, settings: ValidationSettings): string | undefined {
  if (json === undefined) return undefined;
  if (settings.refusal && dialect.refused(json)) return 'the model refused';
  const text = dialect.answerText(json);
  if (typeof text !== 'string') return undefined; // not a completion (models list, embeddings, ...)
  if (settings.emptyContent && text.trim() === '' && !dialect.hasToolCalls(json)) return 'empty content';
  if (settings.json && jsonMode) {
    try {
      JSON.parse(text);
    } catch {
      return 'the request asked for JSON and the content is not valid JSON';
    }
  }
  if (settings.refusal && REFUSAL.test(text)) return 'the model refused';
  return undefined;
}
