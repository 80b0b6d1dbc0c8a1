/**
 * layers/ — the resilience layers of the request path, one file each, in
 * the order proxy/pipeline.ts stacks them. A layer wraps the handler inside
 * it: it may refuse before calling it, call it once or more, and look at or
 * replace what it returns. What a layer acquires it releases itself, through
 * holding(); the innermost handler, attempt, makes the HTTP call.
 */
export * from './degradation.js';
export * from './answer-cache.js';
export * from './stream-recovery.js';
export * from './fallback.js';
export * from './input-guard.js';
export * from './continuation.js';
export * from './trace-tier.js';
export * from './credential.js';
export * from './degraded-request.js';
export * from './token-budget.js';
export * from './rate-limit.js';
export * from './bulkhead.js';
export * from './retry.js';
export * from './hedge.js';
export * from './breaker.js';
export * from './faults.js';
export * from './endpoint-load.js';
export * from './adaptive-limit.js';
export * from './trace-attempt.js';
export * from './attempt.js';
