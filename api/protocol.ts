/**
 * The sidecar–controller protocol. A sidecar opens `GET /v1/config?pod=<name>`
 * on the controller's HTTPS port with its projected service-account token
 * (audience `breakwater.dev`) as a bearer token, and receives server-sent
 * events: `snapshot` (a ConfigSnapshot, replaced whole, never patched) and
 * `no-policy`, with comment heartbeats between; a controller that stops ends
 * each stream with `draining` (data `{}`), after which the sidecar reconnects
 * at its backoff's base (at most once per 10 s). It reports what it applied,
 * its breaker states (and when each breaker that is not closed opened) and SLI
 * counts with `POST /v1/report` (a SidecarReport). What arrives either way is
 * read distrustfully (protocol-checks.ts).
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
export interface ConfigSnapshot extends SnapshotCredentials {
  version: ConfigVersion;
  spec: PolicySpec;
  /**
   * How many pods the policy selects, as the controller counts them: a sidecar whose shared store is away
   * spends 1/selectedPods of what the fleet had left. Absent from controllers of an earlier release.
   */
  selectedPods?: number;
}

/** The most pods a snapshot's selectedPods may say. */
export const MAX_SELECTED_PODS = 100_000;

/**
 * What the controller knows of the Secret keys a policy names (auth.secretRef, cache.redis.secretRef),
 * each by its credentialKey. A key is in exactly one of the three fields, or (from a controller of an
 * earlier release, which sends only `credentials`) in none, which reads as "does not exist". A rotated
 * value, or a change of what is known, comes in a new snapshot of the same version.
 */
export interface SnapshotCredentials {
  /** The usable values (api/credential-value.ts), as the controller last read them. */
  credentials?: Record<string, string>;
  /**
   * Keys the controller knows have no usable value, each with why, said after "Secret <name>, key <key>":
   * "does not exist", or "is not usable: <reason>" (a Secret not labelled for Breakwater, a value that is
   * no credential). Never a value. Ignored by sidecars of an earlier release (the key is missing there too).
   */
  credentialProblems?: Record<string, string>;
  /**
   * Keys of Secrets the controller has not managed to read yet (it just started, or the API server refuses
   * or fails its reads): it does not know them, so the sidecar keeps the value it had for each (in its last
   * snapshot, on disk too). A sidecar of an earlier release takes them as missing, as it always did.
   */
  unreadCredentials?: string[];
}

/** The key of a Secret's key in a snapshot's credential fields. */
export const credentialKey = (ref: { name: string; key: string }) => `${ref.name}/${ref.key}`;

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
  /**
   * The breakers that are open or half-open now, each with when it opened: the
   * leader records one BreakerOpened Event per opening, however many replicas
   * the report reaches. The newest MAX_REPORTED_OPENINGS; absent from sidecars
   * older than this field.
   */
  opened?: OpenedBreaker[];
  /** Good and total events of each SLI the policy tracks, over its SLO window. */
  slo?: SloReport;
  /** The policy's token and cost budgets as this sidecar sees them (at most MAX_REPORTED_BUDGETS); absent from sidecars older than this field. */
  budgets?: BudgetReport[];
  /** Whether the shared store of spec.sharedState answers this sidecar (absent without one): unavailable, it spends a local share of the fleet's limits. */
  sharedStore?: 'available' | 'unavailable';
  /** Each upstream's concurrency limit (its bulkhead's), at most one per upstream of the policy; absent from sidecars older than this field. */
  concurrency?: ConcurrencyReport[];
}

/** An upstream's concurrency limit in a report: its mode, the limit in force (learnt, in mode adaptive) and its bounds (the fixed limit twice, in mode fixed). */
export interface ConcurrencyReport {
  upstream: string;
  mode: 'adaptive' | 'fixed';
  limit: number;
  min: number;
  max: number;
}

/** A report names at most this many upstreams' limits (a policy names at most 32 upstreams), and a limit is at most this (the schema's bound). */
export const MAX_REPORTED_CONCURRENCY = 32;
export const MAX_CONCURRENCY_LIMIT = 10_000;

/** One budget in a report. */
export interface BudgetReport {
  scope: 'policy' | 'upstream';
  /** The upstream, for an upstream's budget (one of the policy's). */
  upstream?: string;
  /** Whether the fleet keeps it (in the shared store), or each pod its own. */
  fleet: boolean;
  /** When its current window ends, by the sidecar's wall clock (ms since the epoch). */
  windowEndsAt: number;
  /** Its limits per window (0 = no limit). */
  limits: { tokens: number; cost: number };
  /** Spent in the window: by the fleet (as the store last said, with this pod's spending since) for a fleet budget; by this pod otherwise. */
  spent: { tokens: number; cost: number };
  /** For a fleet budget: whether the shared store answers (false: this pod spends a local share). */
  storeAvailable?: boolean;
}

/** A report names at most this many budgets: the policy's and one per upstream. */
export const MAX_REPORTED_BUDGETS = 33;

export interface OpenedBreaker {
  upstream: string;
  /** The breaker's scope key within its upstream ("*", a model, with "@endpoint" when there are several), cut to MAX_BREAKER_NAME. */
  breaker: string;
  /** When it opened, by the sidecar's wall clock (ms since the epoch); a breaker restored after a restart keeps it. */
  openedAt: number;
}

/** A report names at most this many openings (the newest): reports are a few hundred bytes, and a replica records them in a ConfigMap. */
export const MAX_REPORTED_OPENINGS = 16;
/** A breaker's scope key in a report is at most this long. */
export const MAX_BREAKER_NAME = 128;

export interface SliCounts {
  good: number;
  total: number;
}

export type SloReport = Partial<Record<'availability' | 'timeToFirstToken', SliCounts>>;

/**
 * The most SLI events one sidecar can count in a second, generously: it is one
 * event loop that relays about 2,000 plain requests a second flat out (bench:
 * 468 us of CPU each), and 10,000 leaves room for cheaper answers such as cache
 * hits. Counts past what this allows over a window are not a sidecar's.
 */
export const MAX_SLI_EVENTS_PER_SECOND = 10_000;

/**
 * The most events of one SLI a pod can report over an SLO window of `windowMs`:
 * the sidecar counts whole minutes, the current one included, so a minute more.
 */
export const maxSliEvents = (windowMs: number) => Math.ceil(((windowMs + 60_000) / 1000) * MAX_SLI_EVENTS_PER_SECOND);

/** A `snapshot` event's data once it reads as one: a version, credential fields, and a spec that is still to be validated (validatePolicy). */
export interface UncheckedSnapshot extends SnapshotCredentials {
  version: ConfigVersion;
  spec: unknown;
  selectedPods?: number;
}
