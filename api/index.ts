/**
 * api/ — the contract both sides import and that imports neither: the policy
 * schema (policy-schema.ts, written by area in schema/, the single source of the CRD, the validator and the
 * defaults), the API families (api-families.ts), the failure classes, duration/size units, the sidecar–controller
 * protocol, what makes a Secret's value a usable credential, and the status conditions' types and reasons (conditions.ts). The schema module itself (TypeBox) is for build time and tests;
 * run time uses what scripts/ generates from it into generated/, and its types.
 */
export type * from './policy-schema.js';
export * from './api-families.js';
export * from './failure-classes.js';
export * from './units.js';
export * from './settings-defaults.js';
export * from './validate-policy.js';
export * from './protocol.js';
export * from './protocol-checks.js';
export * from './credential-value.js';
export * from './config-hash.js';
export * from './conditions.js';
