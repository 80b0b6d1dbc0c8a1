/**
 * fleet/ — limits kept for the fleet of pods a policy selects, not for one
 * pod: budgets and rate limits with `scope: fleet`, counted in the shared
 * store of spec.sharedState (Redis or Valkey). fleet.ts is the room's front:
 * the store, this sidecar's name in it, the pod count and the fleet's rate
 * limiters. Beneath it: lease-counter.ts, the lease state machine every
 * fleet limit runs on (spend locally from a slice the store reserved; top
 * up ahead of need; give back; a local share while the store is away), on
 * lease-book.ts (what a counter knows and holds) and lease-plan.ts (how large
 * a lease and a share are); use-rate.ts, the pace lease sizes follow;
 * lease-script.ts, the Lua the store runs (re-seeding a count the store lost
 * from what the pods knew) and the keys it touches; redis-store.ts, the
 * client with its 50 ms deadline; fleet-budget.ts and fleet-rate.ts, the
 * budget and the rate limit on a counter, with the surfaces of a pod's;
 * fleet-metrics.ts, their gauges.
 *
 * The bound (docs/limits-and-safety.md): while the store answers, the fleet
 * spends at most its limit plus what answers use beyond their reservations
 * (and what a killed pod had in flight); a pod cut off spends at most what it
 * held plus its local share, none of a window it knows nothing of; a store
 * that loses its data loses at most the fleet's last 3 s of spending and the
 * leases outstanding.
 */
export { Fleet, type FleetStatus } from './fleet.js';
export { FleetBudget } from './fleet-budget.js';
export { FleetRateLimiter } from './fleet-rate.js';
export { fleetGauges } from './fleet-metrics.js';
