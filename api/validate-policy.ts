/**
 * Validates a policy document (a bare spec or a whole ResiliencePolicy object)
 * against the schema, fills the schema's defaults, and checks the cross-field
 * rules that the CRD expresses as CEL. Every problem names its field path.
 */
import type { ErrorObject, ValidateFunction } from 'ajv';
import { RE2JS } from 're2js';
import generatedValidator from './generated/validate-spec.js';
import { DURATION_FIELDS } from './generated/duration-fields.js';
import type { PolicySpec, Settings } from './policy-schema.js';
import { MAX_SECRET_NAME, SECRET_KEY_PATTERN, SECRET_NAME_PATTERN } from './secret-names.js';
import { MAX_DURATION, MONEY_PATTERN, OBJECTIVE_PATTERN, parseDuration } from './units.js';

export interface PolicyProblem {
  /** Field path such as `spec.upstreams[0].retry.attempts`. */
  path: string;
  message: string;
}

export type PolicyVerdict =
  | { ok: true; spec: PolicySpec; metadata: { name?: string; namespace?: string; uid?: string; generation?: number } }
  | { ok: false; problems: PolicyProblem[] };

/** Ajv's standalone validator, generated from the schema: fills defaults, collects every error. */
const validateSpec = generatedValidator as unknown as ValidateFunction<PolicySpec>;

function toPath(instancePath: string): string {
  let path = 'spec';
  for (const part of instancePath.split('/').slice(1)) {
    const key = part.replaceAll('~1', '/').replaceAll('~0', '~');
    path += /^[0-9]+$/.test(key) ? `[${key}]` : `.${key}`;
  }
  return path;
}

/** The value at `instancePath` (a JSON pointer) in `document`. */
function valueAt(document: unknown, instancePath: string): unknown {
  let value = document;
  for (const part of instancePath.split('/').slice(1)) value = (value as Record<string, unknown> | undefined)?.[part.replaceAll('~1', '/').replaceAll('~0', '~')];
  return value;
}

/** How much of a bad value a message quotes. */
const MAX_QUOTED_CHARS = 80;

/** A bad value as a message quotes it: JSON-quoted (control characters escaped), and cut when long. */
function quoted(value: unknown): string {
  const text = String(value);
  return text.length > MAX_QUOTED_CHARS ? `${JSON.stringify(text.slice(0, MAX_QUOTED_CHARS))}... (${text.length} characters)` : JSON.stringify(text);
}

function describe(error: ErrorObject, document: unknown): PolicyProblem {
  const path = toPath(error.instancePath);
  switch (error.keyword) {
    case 'additionalProperties':
      return { path: `${path}.${error.params.additionalProperty}`, message: 'unknown field' };
    case 'required':
      return { path: `${path}.${error.params.missingProperty}`, message: 'is required' };
    case 'enum':
      return { path, message: `must be one of: ${(error.params.allowedValues as string[]).join(', ')}` };
    case 'pattern':
      return { path, message: patternMessage(error.params.pattern as string, () => quoted(valueAt(document, error.instancePath))) };
    default:
      return { path, message: error.message ?? 'is invalid' };
  }
}

/** What a value that `pattern` refuses must be; `value` quotes it, for the messages that name it. */
function patternMessage(pattern: string, value: () => string): string {
  if (pattern === SECRET_NAME_PATTERN) return `${value()} is not a Secret name: lower-case letters, digits, - and ., in parts that start and end with a letter or digit, at most ${MAX_SECRET_NAME}`;
  if (pattern === SECRET_KEY_PATTERN) return `${value()} is not a key of a Secret: letters, digits, -, _ and ., not . or .. nor starting with .., at most ${MAX_SECRET_NAME}`;
  if (pattern.includes('ms|s|m|h')) return 'must be a duration such as 250ms, 30s, 5m or 1h';
  if (pattern.includes('Ki|Mi|Gi')) return 'must be a size such as 512Ki or 10Mi';
  if (pattern.includes('a-z0-9')) return 'must be a DNS label: lower-case letters, digits and -, at most 63';
  if (pattern.startsWith('^https?')) return 'must be an http:// or https:// URL without credentials, query or fragment';
  if (pattern.startsWith('^(rediss?')) return 'must be a redis:// or rediss:// URL (or empty)';
  if (pattern.startsWith('^rediss?')) return 'must be a redis:// or rediss:// URL';
  if (pattern.startsWith('^[!#$%')) return 'must be an HTTP header name';
  if (pattern.startsWith('^[\\t\\x20')) return 'must be printable ASCII (no CR, LF or NUL)';
  if (pattern === MONEY_PATTERN) return 'must be a decimal amount such as 25 or 0.15';
  if (pattern === OBJECTIVE_PATTERN) return 'must be a percentage such as 99 or 99.9';
  return `must match ${pattern}`;
}

/**
 * base ≤ max, openFor ≤ maxOpenFor and adaptive min ≤ max, when one object states both (as the CRD's
 * CEL rules check them). A value inherited from elsewhere yields instead: the
 * compiled config stretches an inherited cap to an explicit value.
 */
function orderProblems(settings: Settings | undefined, at: string, problems: PolicyProblem[]): void {
  const backoff = settings?.retry?.backoff;
  if (backoff?.base !== undefined && backoff.max !== undefined && parseDuration(backoff.base) > parseDuration(backoff.max)) {
    problems.push({ path: `${at}.retry.backoff.base`, message: 'must not exceed retry.backoff.max' });
  }
  const cb = settings?.circuitBreaker;
  if (cb?.openFor !== undefined && cb.maxOpenFor !== undefined && parseDuration(cb.openFor) > parseDuration(cb.maxOpenFor)) {
    problems.push({ path: `${at}.circuitBreaker.openFor`, message: 'must not exceed circuitBreaker.maxOpenFor' });
  }
  const adaptive = settings?.bulkhead?.adaptive;
  if (adaptive?.min !== undefined && adaptive.max !== undefined && adaptive.min > adaptive.max) {
    problems.push({ path: `${at}.bulkhead.adaptive.min`, message: 'must not exceed bulkhead.adaptive.max' });
  }
}

const MAX_DURATION_MS = parseDuration(MAX_DURATION);

/** Durations longer than MAX_DURATION (the CRD's CEL rule on each duration field says the same). */
function durationProblems(spec: PolicySpec, problems: PolicyProblem[]): void {
  const visit = (value: unknown, field: readonly string[], path: string): void => {
    if (field.length === 0) {
      if (typeof value === 'string' && parseDuration(value) > MAX_DURATION_MS) problems.push({ path, message: `must be at most ${MAX_DURATION}` });
    } else if (field[0] === '*') {
      if (Array.isArray(value)) value.forEach((item, i) => visit(item, field.slice(1), `${path}[${i}]`));
    } else if (typeof value === 'object' && value !== null && field[0]! in value) {
      visit((value as Record<string, unknown>)[field[0]!], field.slice(1), `${path}.${field[0]}`);
    }
  };
  for (const field of DURATION_FIELDS) visit(spec, field, 'spec');
}

/** Deny patterns must compile as RE2 (the CRD cannot check that), and their names be unique. */
function guardProblems(guards: PolicySpec['upstreams'][number]['guards'], at: string, problems: PolicyProblem[]): void {
  const names = new Set<string>();
  guards.deny.forEach((deny, i) => {
    if (names.has(deny.name)) problems.push({ path: `${at}.deny[${i}].name`, message: `duplicate guard name "${deny.name}"` });
    names.add(deny.name);
    try {
      RE2JS.compile(deny.pattern);
    } catch (err) {
      problems.push({ path: `${at}.deny[${i}].pattern`, message: `not an RE2 regular expression: ${(err as Error).message.slice(0, 200)}` });
    }
  });
}

const NEEDS_STORE = 'fleet needs spec.sharedState (the store the fleet counts in)';

/** Limits scoped to the fleet, and a shared answer cache, need spec.sharedState (the CRD's CEL rules say the same). */
function sharedStateProblems(spec: PolicySpec, problems: PolicyProblem[]): void {
  if (spec.cache.shared && spec.cache.redis?.url) problems.push({ path: 'spec.cache.shared', message: 'spec.cache.shared and spec.cache.redis.url name two Redis for one cache: set one of them' });
  if (spec.sharedState) return;
  if (spec.budget.scope === 'fleet') problems.push({ path: 'spec.budget.scope', message: NEEDS_STORE });
  spec.upstreams.forEach((u, i) => {
    if (u.budget.scope === 'fleet') problems.push({ path: `spec.upstreams[${i}].budget.scope`, message: NEEDS_STORE });
    if (u.rateLimit.scope === 'fleet') problems.push({ path: `spec.upstreams[${i}].rateLimit.scope`, message: NEEDS_STORE });
  });
  if (spec.cache.shared) problems.push({ path: 'spec.cache.shared', message: 'needs spec.sharedState (the Redis the answers are shared in)' });
}

/** Why a reference to an upstream is refused: it names none (the CRD's CEL messages say the same, without the list). */
const namesNone = (names: Set<string>) => `names no upstream of this policy (known: ${[...names].join(', ')})`;

/** The cross-field rules (the CRD's CEL rules say the same). */
function crossFieldProblems(spec: PolicySpec): PolicyProblem[] {
  const problems: PolicyProblem[] = [];
  durationProblems(spec, problems);
  orderProblems(spec.defaults, 'spec.defaults', problems);
  const names = new Set<string>();
  spec.upstreams.forEach((upstream, i) => {
    const at = `spec.upstreams[${i}]`;
    if (names.has(upstream.name)) problems.push({ path: `${at}.name`, message: `duplicate upstream name "${upstream.name}"` });
    names.add(upstream.name);
    if ((upstream.url === undefined) === (upstream.endpoints === undefined)) {
      problems.push({ path: at, message: 'exactly one of url or endpoints must be set' });
    }
    const auth = upstream.auth;
    if (auth && [auth.secretRef, auth.env, auth.file].filter((s) => s !== undefined).length !== 1) {
      problems.push({ path: `${at}.auth`, message: 'exactly one of secretRef, env or file must be set' });
    }
    orderProblems(upstream, at, problems);
    guardProblems(upstream.guards, `${at}.guards`, problems);
    if (Number(upstream.budget.cost) > 0 && upstream.prices.length === 0) problems.push({ path: `${at}.budget.cost`, message: 'needs prices for this upstream\'s models' });
    if (upstream.healthCheck.metricsPath && !upstream.healthCheck.path) problems.push({ path: `${at}.healthCheck.metricsPath`, message: 'needs healthCheck.path: the metrics are read on the health check\'s schedule' });
  });
  const sloWindow = parseDuration(spec.slo.window);
  if (sloWindow < 60_000 || sloWindow > 24 * 3_600_000) problems.push({ path: 'spec.slo.window', message: 'must be between 1m and 24h' });
  if (Number(spec.budget.cost) > 0 && !spec.upstreams.some((u) => u.prices.length > 0)) problems.push({ path: 'spec.budget.cost', message: 'needs prices on at least one upstream' });
  sharedStateProblems(spec, problems);
  spec.upstreams.forEach((upstream, i) => {
    upstream.fallback.forEach((tier, j) => {
      const at = `spec.upstreams[${i}].fallback[${j}]`;
      const kinds = [tier.upstream, tier.cache, tier.static].filter((k) => k !== undefined).length;
      if (kinds !== 1) problems.push({ path: at, message: 'exactly one of upstream, cache or static must be set' });
      if (tier.model !== undefined && tier.upstream === undefined) problems.push({ path: `${at}.model`, message: 'only applies to an upstream tier' });
      if (tier.upstream !== undefined && !names.has(tier.upstream)) {
        problems.push({ path: `${at}.upstream`, message: `"${tier.upstream}" ${namesNone(names)}` });
      }
      if (tier.upstream === upstream.name) problems.push({ path: `${at}.upstream`, message: `"${tier.upstream}" is this upstream itself: an upstream cannot fall back to itself` });
      const other = spec.upstreams.find((u) => u.name === tier.upstream);
      if (other && other.api !== upstream.api) problems.push({ path: `${at}.upstream`, message: `"${other.name}" speaks ${other.api}, and "${upstream.name}" ${upstream.api}: a chain speaks one API (the app's request and answer are in it)` });
    });
    const target = upstream.hedge.upstream;
    const at = `spec.upstreams[${i}].hedge`;
    if (target !== undefined && !names.has(target)) problems.push({ path: `${at}.upstream`, message: `"${target}" ${namesNone(names)}` });
    if (target === upstream.name) problems.push({ path: `${at}.upstream`, message: `"${target}" is this upstream itself: a hedge goes to another upstream` });
    if (upstream.hedge.model !== undefined && target === undefined) problems.push({ path: `${at}.model`, message: 'only applies with hedge.upstream' });
    const hedged = spec.upstreams.find((u) => u.name === target);
    if (hedged && target !== upstream.name && hedged.api !== upstream.api) problems.push({ path: `${at}.upstream`, message: `"${hedged.name}" speaks ${hedged.api}, and "${upstream.name}" ${upstream.api}: a hedge speaks the API of the upstream it hedges` });
  });
  const classes = spec.priorities.classes.map((c) => c.name);
  if (new Set(classes).size !== classes.length) problems.push({ path: 'spec.priorities.classes', message: 'class names must be unique' });
  if (!classes.includes(spec.priorities.default)) {
    problems.push({ path: 'spec.priorities.default', message: `"${spec.priorities.default}" names no class (known: ${classes.join(', ')})` });
  }
  const reserved = spec.priorities.classes.reduce((sum, c) => sum + c.reserved, 0);
  // The CRD's CEL rule says the same: with reserved shares of 100% or more, some class could never run.
  if (classes.length > 1 && reserved >= 100) problems.push({ path: 'spec.priorities.classes', message: `reserved shares add up to ${reserved}%: they must add up to less than 100, or some class could never run` });
  spec.faults.forEach((fault, i) => {
    if (!names.has(fault.upstream)) problems.push({ path: `spec.faults[${i}].upstream`, message: `"${fault.upstream}" ${namesNone(names)}` });
  });
  return problems;
}

/** Validates and defaults a parsed policy document. The input is not modified. */
export function validatePolicy(document: unknown): PolicyVerdict {
  if (typeof document !== 'object' || document === null || Array.isArray(document)) {
    return { ok: false, problems: [{ path: 'spec', message: 'must be an object (a ResiliencePolicy or its spec)' }] };
  }
  const doc = document as Record<string, unknown>;
  const isResource = 'apiVersion' in doc || 'kind' in doc;
  if (isResource && (doc.apiVersion !== 'breakwater.dev/v1alpha1' || doc.kind !== 'ResiliencePolicy')) {
    return { ok: false, problems: [{ path: 'apiVersion', message: 'must be breakwater.dev/v1alpha1 with kind ResiliencePolicy' }] };
  }
  const spec = structuredClone(isResource ? doc.spec : doc);
  if (!validateSpec(spec)) {
    const problems = (validateSpec.errors ?? []).map((error) => describe(error, spec));
    const unique = new Map(problems.map((p) => [`${p.path} ${p.message}`, p]));
    return { ok: false, problems: [...unique.values()] };
  }
  const problems = crossFieldProblems(spec);
  if (problems.length > 0) return { ok: false, problems };
  const meta = (isResource ? doc.metadata : undefined) as Record<string, unknown> | undefined;
  return {
    ok: true,
    spec,
    metadata: {
      name: meta?.name as string | undefined,
      namespace: meta?.namespace as string | undefined,
      uid: meta?.uid as string | undefined,
      generation: meta?.generation as number | undefined,
    },
  };
}

/** One line per problem, for people. */
export function formatProblems(problems: PolicyProblem[]): string {
  return problems.map((p) => `${p.path}: ${p.message}`).join('\n');
}
