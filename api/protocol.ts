/** Types shared by the sidecar and the controller for config delivery and reporting. */
import type { PolicySpec } from './policy-schema.js';

/** Identifies one resolved config: which policy, which generation, and a hash of the spec. */
export interface ConfigVersion {
  source: 'file' | 'controller' | 'demo';
  policy: string;
  generation: number;
  hash: string;
}

/** A complete config as a sidecar applies it: replaced whole, never patched. */
export interface ConfigSnapshot {
  version: ConfigVersion;
  spec: PolicySpec;
}
