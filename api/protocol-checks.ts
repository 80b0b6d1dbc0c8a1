/**
 * What arrives over the sidecar–controller protocol (protocol.ts), read as
 * distrustfully as a policy file: a `snapshot` or `no-policy` event as a
 * sidecar reads it, and a report as the controller checks it (a sidecar is
 * only as trustworthy as the pod it runs in). Nothing here throws: each says
 * what it read, or why it refuses it.
 */
import { credentialValue } from './credential-value.js';
import { MAX_BREAKER_NAME, MAX_CONCURRENCY_LIMIT, MAX_REPORTED_BUDGETS, MAX_REPORTED_CONCURRENCY, MAX_REPORTED_OPENINGS, MAX_SELECTED_PODS, maxSliEvents, type BudgetReport, type ConcurrencyReport, type ConfigVersion, type OpenedBreaker, type SidecarReport, type SloReport, type SnapshotCredentials, type UncheckedSnapshot } from './protocol.js';

const MAX_REPORTED_ERROR = 1024;
const MAX_COUNT = 1_000_000;

/** The longest SLO window a policy may set (spec.slo.window). */
const MAX_SLO_WINDOW_MS = 24 * 3_600_000;

/** A report is refused past the longest window's ceiling; the controller holds each pod to its policy's own window (controller/policy-status.ts). */
const MAX_EVENTS = maxSliEvents(MAX_SLO_WINDOW_MS);

/** SLI counts as a sidecar reported them, or undefined when they are not well-formed. */
function sloReport(value: unknown): SloReport | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const out: SloReport = {};
  for (const [name, counts] of Object.entries(value as Record<string, { good?: unknown; total?: unknown }>)) {
    if (name !== 'availability' && name !== 'timeToFirstToken') return undefined;
    const { good, total } = counts ?? {};
    if (!Number.isSafeInteger(good) || !Number.isSafeInteger(total) || (good as number) < 0 || (good as number) > (total as number) || (total as number) > MAX_EVENTS) return undefined;
    out[name] = { good: good as number, total: total as number };
  }
  return out;
}

const isText = (v: unknown, max: number): v is string => typeof v === 'string' && v.length <= max;
const isCount = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= MAX_COUNT;

function isOpenedBreaker(v: unknown, upstreams: ReadonlySet<string>): v is OpenedBreaker {
  const o = v as Record<string, unknown>;
  return typeof o === 'object' && o !== null && typeof o.upstream === 'string' && upstreams.has(o.upstream) && isText(o.breaker, MAX_BREAKER_NAME) && Number.isSafeInteger(o.openedAt) && (o.openedAt as number) >= 0;
}

const isAmount = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0 && v <= 1e15;
const isSpend = (v: unknown) => typeof v === 'object' && v !== null && isAmount((v as Record<string, unknown>).tokens) && isAmount((v as Record<string, unknown>).cost);

function isBudgetReport(v: unknown, upstreams: ReadonlySet<string>): v is BudgetReport {
  const o = v as Record<string, unknown>;
  return (
    typeof o === 'object' &&
    o !== null &&
    (o.scope === 'policy' ? o.upstream === undefined : o.scope === 'upstream' && typeof o.upstream === 'string' && upstreams.has(o.upstream)) &&
    typeof o.fleet === 'boolean' &&
    Number.isSafeInteger(o.windowEndsAt) &&
    (o.windowEndsAt as number) >= 0 &&
    isSpend(o.limits) &&
    isSpend(o.spent) &&
    (o.storeAvailable === undefined || typeof o.storeAvailable === 'boolean')
  );
}

const isLimit = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 1 && (v as number) <= MAX_CONCURRENCY_LIMIT;

/** An upstream's concurrency limit: one of the pod's upstreams, a mode, and min <= limit <= max within the schema's bound. */
function isConcurrencyReport(v: unknown, upstreams: ReadonlySet<string>): v is ConcurrencyReport {
  const o = v as Record<string, unknown>;
  return (
    typeof o === 'object' &&
    o !== null &&
    typeof o.upstream === 'string' &&
    upstreams.has(o.upstream) &&
    (o.mode === 'adaptive' || o.mode === 'fixed') &&
    isLimit(o.limit) &&
    isLimit(o.min) &&
    isLimit(o.max) &&
    o.min <= o.limit &&
    o.limit <= o.max
  );
}

function isVersion(v: unknown): v is ConfigVersion {
  const o = v as Record<string, unknown>;
  return (
    typeof o === 'object' &&
    o !== null &&
    ['file', 'controller', 'demo'].includes(o.source as string) &&
    isText(o.policy, 320) &&
    isCount(o.generation) &&
    isText(o.hash, 128) &&
    (o.uid === undefined || isText(o.uid, 64))
  );
}

/** The most keys a credential field holds (a policy names at most 32 upstreams and a cache), the longest key, and the most of a reason kept. */
const MAX_CREDENTIALS = 64;
const MAX_CREDENTIAL_KEY = 512;
const MAX_CREDENTIAL_PROBLEM = 512;

/** A map of at most MAX_CREDENTIALS short keys to strings, as own entries; undefined when it is not one. */
function stringMap(value: unknown): [string, string][] | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const entries = Object.entries(value as Record<string, unknown>);
  if (entries.length > MAX_CREDENTIALS || entries.some(([key, v]) => key.length > MAX_CREDENTIAL_KEY || typeof v !== 'string')) return undefined;
  return entries as [string, string][];
}

/**
 * A snapshot's credential fields when well-formed, or why not. Each value is held to credentialValue:
 * one that is no usable credential (a controller of an earlier release sent it) moves to
 * credentialProblems, and the rest of the snapshot is kept. Objects are built from entries, so a key
 * such as `__proto__` is an own key like any other.
 */
function credentialsOf(o: Record<string, unknown>): SnapshotCredentials | string {
  const out: SnapshotCredentials = {};
  const problems = o.credentialProblems === undefined ? [] : stringMap(o.credentialProblems);
  if (!problems) return `credentialProblems: at most ${MAX_CREDENTIALS} strings`;
  if (o.credentials !== undefined) {
    const values = stringMap(o.credentials);
    if (!values) return `credentials: at most ${MAX_CREDENTIALS} strings`;
    const usable: [string, string][] = [];
    for (const [key, raw] of values) {
      const checked = credentialValue(raw);
      if (checked.problem === undefined) usable.push([key, checked.value]);
      else problems.push([key, `is not usable: ${checked.problem}`]);
    }
    out.credentials = Object.fromEntries(usable);
  }
  if (o.credentialProblems !== undefined || problems.length > 0) out.credentialProblems = Object.fromEntries(problems.map(([key, why]) => [key, why.slice(0, MAX_CREDENTIAL_PROBLEM)]));
  if (o.unreadCredentials !== undefined) {
    const unread = o.unreadCredentials;
    if (!Array.isArray(unread) || unread.length > MAX_CREDENTIALS || !unread.every((key) => isText(key, MAX_CREDENTIAL_KEY))) return `unreadCredentials: at most ${MAX_CREDENTIALS} strings`;
    out.unreadCredentials = unread as string[];
  }
  return out;
}

/**
 * A `snapshot` event's data as the sidecar reads it: the snapshot, or why it is
 * not one (not JSON, not an object, no well-formed version). Never throws; what
 * the spec says is validatePolicy's to check.
 */
export function readSnapshot(data: string): { ok: true; snapshot: UncheckedSnapshot } | { ok: false; error: string } {
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch (err) {
    return { ok: false, error: `not JSON (${(err as Error).message})` };
  }
  const o = value as Record<string, unknown>;
  if (typeof o !== 'object' || o === null || Array.isArray(o)) return { ok: false, error: 'a snapshot is a JSON object' };
  if (!isVersion(o.version)) return { ok: false, error: 'version: not a config version' };
  const credentials = credentialsOf(o);
  if (typeof credentials === 'string') return { ok: false, error: credentials };
  // selectedPods is advisory (the divisor of a local share): a figure that is not one is dropped, not a reason to refuse the policy.
  const pods = o.selectedPods;
  const selectedPods = Number.isSafeInteger(pods) && (pods as number) >= 1 && (pods as number) <= MAX_SELECTED_PODS ? (pods as number) : undefined;
  return { ok: true, snapshot: { version: o.version, spec: o.spec, ...credentials, ...(selectedPods === undefined ? {} : { selectedPods }) } };
}

/** The reason of a `no-policy` event, cut to 1,024 characters, or undefined when the data is not `{ reason: string }`. */
export function readNoPolicy(data: string): string | undefined {
  try {
    const reason = (JSON.parse(data) as { reason?: unknown } | null)?.reason;
    return typeof reason === 'string' ? reason.slice(0, MAX_REPORTED_ERROR) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A report as a sidecar sent it, checked field by field: a sidecar is only as
 * trustworthy as the pod it runs in. Breakers may only be reported for the
 * upstreams of the pod's own policy (`upstreams`); a rejection's error is cut
 * to 1,024 characters. Returns the report, or why it is refused.
 */
export function validateReport(value: unknown, upstreams: ReadonlySet<string>): { ok: true; report: SidecarReport } | { ok: false; error: string } {
  const o = value as Record<string, unknown>;
  if (typeof o !== 'object' || o === null || Array.isArray(o)) return { ok: false, error: 'a report is a JSON object' };
  if (o.applied !== null && !isVersion(o.applied)) return { ok: false, error: 'applied: not a config version' };
  const rejected = o.rejected as { version?: unknown; error?: unknown } | undefined;
  if (rejected !== undefined && (typeof rejected !== 'object' || rejected === null || !isVersion(rejected.version) || typeof rejected.error !== 'string')) {
    return { ok: false, error: 'rejected: needs a version and an error' };
  }
  const breakers = o.breakers as Record<string, Record<string, unknown>>;
  if (typeof breakers !== 'object' || breakers === null || Array.isArray(breakers)) return { ok: false, error: 'breakers: not an object' };
  for (const [name, counts] of Object.entries(breakers)) {
    if (!upstreams.has(name)) return { ok: false, error: `breakers: "${name.slice(0, 64)}" is not an upstream of this pod's policy` };
    if (typeof counts !== 'object' || counts === null || !isCount(counts.closed) || !isCount(counts.halfOpen) || !isCount(counts.open)) {
      return { ok: false, error: `breakers.${name}: needs closed, halfOpen and open counts` };
    }
  }
  const report: SidecarReport = {
    applied: o.applied as ConfigVersion | null,
    breakers: Object.fromEntries(Object.entries(breakers).map(([name, c]) => [name, { closed: c.closed as number, halfOpen: c.halfOpen as number, open: c.open as number }])),
  };
  if (o.opened !== undefined) {
    if (!Array.isArray(o.opened) || o.opened.length > MAX_REPORTED_OPENINGS || !o.opened.every((b) => isOpenedBreaker(b, upstreams))) {
      return { ok: false, error: `opened: at most ${MAX_REPORTED_OPENINGS} breakers of this pod's upstreams, each with its breaker and openedAt` };
    }
    report.opened = o.opened.map((b: OpenedBreaker) => ({ upstream: b.upstream, breaker: b.breaker, openedAt: b.openedAt }));
  }
  if (o.slo !== undefined) {
    const slo = sloReport(o.slo);
    if (!slo) return { ok: false, error: `slo: needs availability and timeToFirstToken counts, good <= total <= ${MAX_EVENTS}` };
    report.slo = slo;
  }
  if (o.budgets !== undefined) {
    if (!Array.isArray(o.budgets) || o.budgets.length > MAX_REPORTED_BUDGETS || !o.budgets.every((b) => isBudgetReport(b, upstreams))) {
      return { ok: false, error: `budgets: at most ${MAX_REPORTED_BUDGETS} budgets of this pod's policy, each with its scope, fleet, windowEndsAt, limits and spent` };
    }
    // One entry per budget: a pod that named one budget many times would weigh as many pods in the status.
    if (new Set(o.budgets.map((b: BudgetReport) => `${b.scope}/${b.upstream ?? ''}`)).size !== o.budgets.length) return { ok: false, error: 'budgets: each budget at most once' };
    report.budgets = o.budgets.map((b: BudgetReport) => ({
      scope: b.scope,
      ...(b.upstream === undefined ? {} : { upstream: b.upstream }),
      fleet: b.fleet,
      windowEndsAt: b.windowEndsAt,
      limits: { tokens: b.limits.tokens, cost: b.limits.cost },
      spent: { tokens: b.spent.tokens, cost: b.spent.cost },
      ...(b.storeAvailable === undefined ? {} : { storeAvailable: b.storeAvailable }),
    }));
  }
  if (o.sharedStore !== undefined) {
    if (o.sharedStore !== 'available' && o.sharedStore !== 'unavailable') return { ok: false, error: 'sharedStore: available or unavailable' };
    report.sharedStore = o.sharedStore;
  }
  if (o.concurrency !== undefined) {
    const limits = o.concurrency;
    if (!Array.isArray(limits) || limits.length > MAX_REPORTED_CONCURRENCY || !limits.every((c) => isConcurrencyReport(c, upstreams))) {
      return { ok: false, error: `concurrency: at most ${MAX_REPORTED_CONCURRENCY} of this pod's upstreams, each with its mode and min <= limit <= max <= ${MAX_CONCURRENCY_LIMIT}` };
    }
    // One entry per upstream: a pod that named one many times would weigh as many pods in the status.
    if (new Set(limits.map((c: ConcurrencyReport) => c.upstream)).size !== limits.length) return { ok: false, error: 'concurrency: each upstream at most once' };
    report.concurrency = limits.map((c: ConcurrencyReport) => ({ upstream: c.upstream, mode: c.mode, limit: c.limit, min: c.min, max: c.max }));
  }
  if (rejected) report.rejected = { version: rejected.version as ConfigVersion, error: (rejected.error as string).slice(0, MAX_REPORTED_ERROR) };
  return { ok: true, report };
}
