/**
 * The shared pieces of the policy schema, which every area of it builds with:
 * the string patterns (durations, sizes, DNS labels), the `cel()` rule wrapper
 * and CEL duration checks, the field makers (duration, percent, money, enum,
 * objective, and `inherited()` for the settings `spec.defaults` can override),
 * the token and cost budget, and the failure classes.
 */
import { Type, type TSchema } from '@sinclair/typebox';
import { FAILURE_CLASSES } from '../failure-classes.js';
import { MAX_DURATION, MAX_DURATION_CHARS, MONEY_PATTERN, OBJECTIVE_PATTERN } from '../units.js';

export const DURATION_PATTERN = '^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$';
export const SIZE_PATTERN = '^[0-9]+(\\.[0-9]+)?(Ki|Mi|Gi|k|M|G)?$';
export const DNS_LABEL_PATTERN = '^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$';

/** Annotation key for a default inherited through `spec.defaults`. */
export const INHERITED_DEFAULT = 'x-breakwater-default';

/** One entry of `x-kubernetes-validations`: a CEL rule and what the API server says when it fails. */
export interface CelRule { rule: string; message: string; messageExpression?: string }

/**
 * A cross-field rule as the CRD states it (CEL, checked by the API server); the
 * same rules are checked locally in api/validate-policy.ts, and the end-to-end
 * tests hold both to the same invalid examples. A `messageExpression` names
 * the bad value and where it is (`message` stays as its fallback).
 */
export const cel = (...rules: CelRule[]) => ({ 'x-kubernetes-validations': rules });

/**
 * A duration with a part of at least 1000h, 100000m, 10^7 s or 10^10 ms: longer
 * than MAX_DURATION (596h) whatever else it holds. CEL's duration() fails on the
 * longest of these (past 2^63 ns), so the CEL rules say "too long" before calling it.
 */
export const DURATION_TOO_LONG = '(^|[hms])0*([1-9][0-9]{3,}(\\.[0-9]+)?h|[1-9][0-9]{5,}(\\.[0-9]+)?m([0-9]|$)|[1-9][0-9]{7,}(\\.[0-9]+)?s|[1-9][0-9]{10,}(\\.[0-9]+)?ms)';

/**
 * CEL: whether the string `x` is a duration CEL's duration() reads. A string the
 * pattern refuses is reported by the pattern alone: a CEL rule that called
 * duration() on it would add "type conversion error" to the answer.
 */
export const celDuration = (x: string) => `(${x}.matches(r'${DURATION_PATTERN}') && !${x}.matches(r'${DURATION_TOO_LONG}'))`;

/** A duration: at most MAX_DURATION, the longest wait a timer can hold (setTimeout's 2^31-1 ms). */
export const duration = (description: string, options: { default?: string } = {}) =>
  Type.String({
    pattern: DURATION_PATTERN,
    maxLength: MAX_DURATION_CHARS,
    description: `${description} A duration such as 250ms, 30s, 5m, 1h (at most ${MAX_DURATION}).`,
    ...options,
    ...cel({
      rule: `!self.matches(r'${DURATION_PATTERN}') || (!self.matches(r'${DURATION_TOO_LONG}') && duration(self) <= duration('${MAX_DURATION}'))`,
      message: `must be at most ${MAX_DURATION}`,
    }),
  });
export const percent = (description: string) => Type.Integer({ minimum: 0, maximum: 100, description });

/** A settings leaf: its built-in default travels as an annotation and in the description. */
export function inherited<T extends TSchema>(schema: T, value: unknown) {
  const description = `${schema.description ?? ''} Default: ${JSON.stringify(value)}.`.trim();
  return Type.Optional({ ...schema, description, [INHERITED_DEFAULT]: value } as T);
}

/** A string that must be one of `values`: a JSON Schema `enum`, so errors and `kubectl explain` list the choices. */
export function stringEnum<const T extends readonly string[]>(values: T, options: { description?: string; default?: T[number] } = {}) {
  return Type.Unsafe<T[number]>({ type: 'string', enum: [...values], ...options });
}

export const money = (description: string, options: { default?: string } = {}) => Type.String({ pattern: MONEY_PATTERN, maxLength: 16, description, ...options });

/**
 * Whether a limit is each pod's or the fleet's. No schema default: it depends on
 * whether the policy names a shared store (spec.sharedState), so a policy written
 * before the field meant, and still means, each pod's.
 */
export const scopeField = (what: string) =>
  Type.Optional(
    stringEnum(['pod', 'fleet'], {
      description: `Whose ${what} are: pod (each sidecar keeps its own, so N replicas may use N times them) or fleet (all the pods the policy selects together, counted in the shared store of spec.sharedState through leases: see the README's budgets section). Default: fleet when the policy sets spec.sharedState, else pod; fleet needs spec.sharedState.`,
    }),
  );

/** A token and cost budget, for the whole policy or one upstream. */
export const budget = (whose: string) =>
  Type.Object(
    {
      window: stringEnum(['hour', 'day'], { default: 'hour', description: 'What the limits are per: each clock hour, or each UTC day. Spending starts again from zero when the window rolls.' }),
      tokens: Type.Integer({ minimum: 0, maximum: 1_000_000_000_000, default: 0, description: 'Input plus output tokens per window (0 = no limit).' }),
      cost: money('Cost per window, in the currency of the upstreams\' prices (0 = no limit).', { default: '0' }),
      scope: scopeField('the limits'),
    },
    {
      additionalProperties: false,
      default: {},
      description: `A token and cost budget for ${whose} (opt-in): for each pod, or for the fleet of pods the policy selects (scope). Kept across restarts and config changes. Each request reserves what it may use (input at ~4 bytes a token, plus its max_tokens) and is charged what its answer reports. Over budget: 429 budget_exhausted with Retry-After until the window rolls, or the next fallback tier whose when lists budget-exhausted.`,
    },
  );
export const objective = (description: string) => Type.String({ pattern: OBJECTIVE_PATTERN, maxLength: 6, default: '0', description: `${description} A percentage below 100 such as 99 or 99.9; 0 = not tracked.` });

export const hasCost = (at: string) => `!has(${at}.budget) || !has(${at}.budget.cost) || double(${at}.budget.cost) == 0.0`;

const failureClass = stringEnum(FAILURE_CLASSES, {
  description:
    'A failure class: rate-limited (429), overloaded (503, 529 or an overloaded error body), server-error (other 5xx), timeout, connect-failure, reset, context-length, content-filter, invalid-response (an answer that fails validation or a cap), diverged (a recovered stream that is not the answer the app has) or client-error (other 4xx).',
});
export const failureClasses = (description: string, value: readonly string[]) =>
  inherited(Type.Array(failureClass, { description, uniqueItems: true }), value);
