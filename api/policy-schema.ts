/**
 * The one schema of a ResiliencePolicy spec: the contract, as `kubectl explain rp.spec`
 * and docs/policy-reference.md (generated from it) show it (every field has a description).
 *
 * Everything else derives from it: the TypeScript types (`Static`), the local
 * policy-file validator (Ajv), the CRD's openAPIV3Schema, and the built-in
 * defaults. Settings that `spec.defaults` can override (timeouts, retry,
 * circuitBreaker, bulkhead) carry their built-in default as the annotation
 * `x-breakwater-default` rather than JSON Schema `default`: a `default` there
 * would be filled into every upstream and silently beat `spec.defaults`.
 *
 * The schema itself is written by area in schema/ (schema/policy-spec.ts
 * assembles it); this file is its entry, and re-exports its public names.
 */
export { DNS_LABEL_PATTERN, DURATION_PATTERN, DURATION_TOO_LONG, INHERITED_DEFAULT, SIZE_PATTERN } from './schema/shared.js';
export { BackoffSchema, BulkheadSchema, CircuitBreakerSchema, RetryBudgetSchema, RetrySchema, SettingsSchema, TimeoutsSchema } from './schema/settings.js';
export { AuthSchema, FallbackTierSchema } from './schema/upstream-parts.js';
export { UpstreamSchema } from './schema/upstream.js';
export { PrioritiesSchema } from './schema/selector-and-priorities.js';
export { PolicySpecSchema, type ApiFamily, type FullSettings, type PolicySpec, type Settings, type UpstreamSpec } from './schema/policy-spec.js';
