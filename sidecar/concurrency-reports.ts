/**
 * Each upstream's concurrency limit as reports tell the controller
 * (api/protocol.ts, ConcurrencyReport), which writes it in the policy's
 * status: the bulkhead's mode, its limit in force (learnt, in mode
 * adaptive) and its bounds (the fixed limit twice, in mode fixed).
 */
import type { ConcurrencyReport } from '../api/index.js';

/** What of an upstream's live objects a report reads. */
interface Limited {
  name: string;
  config: { bulkhead: { adaptive?: unknown } };
  bulkhead: { limit: number };
  limitBounds: { min: number; max: number };
}

export function concurrencyReports(upstreams: Iterable<Limited>): ConcurrencyReport[] {
  return [...upstreams].map((u) => ({ upstream: u.name, mode: u.config.bulkhead.adaptive ? 'adaptive' : 'fixed', limit: u.bulkhead.limit, min: u.limitBounds.min, max: u.limitBounds.max }));
}
