/**
 * api/ — the contract both sides import and that imports neither: the policy
 * schema (the single source of the CRD, the validator and the defaults), the
 * failure classes, duration/size units, and the sidecar–controller protocol.
 */
export * from './policy-schema.js';
export * from './failure-classes.js';
export * from './units.js';
export * from './settings-defaults.js';
export * from './validate-policy.js';
export * from './protocol.js';
