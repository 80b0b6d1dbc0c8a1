/**
 * The sidecar–controller protocol. A sidecar opens `GET /v1/config?pod=<name>`
 * on the controller's HTTPS port with its projected service-account token
 * (audience `breakwater.dev`) as a bearer token, and receives server-sent
 * events: `snapshot` (a ConfigSnapshot, replaced whole, never patched) and
 * `no-policy`, with comment heartbeats between. It reports what it applied and
 * its breaker states with `POST /v1/report` (a SidecarReport).
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
}
