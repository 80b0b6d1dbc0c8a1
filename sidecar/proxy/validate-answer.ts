/**
 * Soft failures: a 200 whose content is unusable counts as invalid-response
 * (policy `validation`), so it can be retried, fall back and count against the
 * breaker instead of reaching the app as a success. Checked on plain answers;
 * a stream is already on its way to the app when it could be judged.
 */
import { textOf, type AnswerShape } from './answer-shapes.js';

export interface ValidationSettings {
  /** A request that asked for JSON output must get valid JSON content. */
  json: boolean;
  /** Refusals (OpenAI's `refusal` field, or a refusal phrase) are invalid. */
  refusal: boolean;
  /** Empty content without tool calls is invalid. */
  emptyContent: boolean;
}

const REFUSAL = /^\s*(I'm sorry|I am sorry|I apologi[sz]e|Sorry)[,.]?\s+(but\s+)?I\s+(can(no|')t|am unable to|won't)\b/i;

function hasToolCalls(json: Record<string, any>): boolean {
  return Boolean(json.choices?.[0]?.message?.tool_calls?.length || json.message?.tool_calls?.length || json.content?.some?.((c: { type: string }) => c.type === 'tool_use'));
}

/** Why a 200 answer is unusable, or undefined when it is fine (or not JSON at all: not ours to judge). */
export function invalidAnswer(shape: AnswerShape, body: string, jsonMode: boolean, settings: ValidationSettings): string | undefined {
  let json: Record<string, any>;
  try {
    json = JSON.parse(body) as Record<string, any>;
  } catch {
    return undefined;
  }
  if (settings.refusal && typeof json.choices?.[0]?.message?.refusal === 'string') return 'the model refused';
  const text = textOf(shape, json);
  if (text === undefined) return undefined; // not a completion (models list, embeddings, ...)
  if (settings.emptyContent && text.trim() === '' && !hasToolCalls(json)) return 'empty content';
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
