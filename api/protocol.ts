/**
 * The sidecar–controller protocol. A sidecar opens `GET /v1/config?pod=<name>`
 * on the controller's HTTPS port with its projected service-account token
 * (audience `breakwater.dev`) as a bearer token, and receives server-sent
 * events: `snapshot` (a ConfigSnapshot, replaced whole, never patched) and
 * `no-policy`, with comment heartbeats between. It reports what it applied and
 * its breaker states and SLI counts with `POST /v1/report` (a SidecarReport).
 */
import type { PolicySpec } from './policy-schema.js';

export const TOKEN_AUDIENCE = 'breakwater.dev';

/** The environment variable through which the injector hands a Secret's key (auth.secretRef) to the sidecar. */
export const secretEnvName = (name: string, key: string) => `BREAKWATER_SECRET_${name}_${key}`.toUpperCase().replace(/[^A-Z0-9_]/g, '_');

/** Identifies one resolved config: which policy, which generation, and a hash of the spec. */
export interface ConfigVersion {
  source: 'file' | 'controller' | 'demo';
  /** `namespace/name` for a policy from the controller; a file name locally. */
  policy: string;
  generation: number;
  hash: string;
  uid?: string;
}

/** A complete config as a sidecar applies it. */
export interface ConfigSnapshot {
  version: ConfigVersion;
  spec: PolicySpec;
}

export interface BreakerCounts {
  closed: number;
  halfOpen: number;
  open: number;
}

export interface SidecarReport {
  /** The config in force, or null before any. */
  applied: ConfigVersion | null;
  /** A snapshot the sidecar refused (it keeps the last good one). */
  rejected?: { version: ConfigVersion; error: string };
  /** Breaker states per upstream. */
  breakers: Record<string, BreakerCounts>;
  /** Good and total events of each SLI the policy tracks, over its SLO window. */
  slo?: SloReport;
}

export interface SliCounts {
  good: number;
  total: number;
}

export type SloReport = Partial<Record<'availability' | 'timeToFirstToken', SliCounts>>;

const MAX_REPORTED_ERROR = 1024;
const MAX_COUNT = 1_000_000;

/** SLI events of a day at a busy pod fit easily; a count past this is not a sidecar's. */
const MAX_EVENTS = 1e12;

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
  if (o.slo !== undefined) {
    const slo = sloReport(o.slo);
    if (!slo) return { ok: false, error: 'slo: needs availability and timeToFirstToken counts, good <= total' };
    report.slo = slo;
  }
  if (rejected) report.rejected = { version: rejected.version as ConfigVersion, error: (rejected.error as string).slice(0, MAX_REPORTED_ERROR) };
  return { ok: true, report };
}
