/**
 * config/ — where the sidecar's config comes from and what it becomes: a
 * policy file (watched, hot-reloaded), or the controller's authenticated
 * stream (with a copy on disk for restarts), each compiled
 * (compile-config.ts) into the RuntimeConfig the rest of the sidecar reads
 * (runtime-config.ts). An invalid policy is rejected naming the field, and
 * the last good config stays.
 */
export * from './controller-source.js';
export * from './policy-file.js';
export * from './runtime-config.js';
export * from './compile-config.js';
export * from './input-guards.js';
export * from './prices.js';
