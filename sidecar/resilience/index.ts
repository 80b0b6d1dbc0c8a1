/**
 * resilience/ — the state machines the product is made of, each small, owned
 * and tested hard, and none knowing about HTTP: the circuit breaker and its
 * trip rules, the priority bulkhead (its adaptive limit and its fair queue), the retry budget, backoff with jitter,
 * client-side rate limits, degradation modes, the stream verifier of
 * mid-stream recovery, token and cost budgets, SLI windows, the sliding window they count in, the injectable clock every one of them reads time from, and the flag their waits watch for the app's going away.
 */
export * from './backoff.js';
export * from './adaptive-limit.js';
export * from './bulkhead.js';
export * from './fair-queue.js';
export * from './circuit-breaker.js';
export * from './abort-flag.js';
export * from './clock.js';
export * from './degradation.js';
export * from './rate-limiter.js';
export * from './retry-budget.js';
export * from './sleep.js';
export * from './stream-verifier.js';
export * from './continuation-seam.js';
export * from './throughput-floor.js';
export * from './latency-window.js';
export * from './health-check.js';
export * from './server-queue-watch.js';
export * from './sli-window.js';
export * from './token-budget.js';
export * from './trip-rules.js';
