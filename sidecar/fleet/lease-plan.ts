/**
 * How large a lease and a local share are (lease-counter.ts), from what a pod
 * knows of the fleet (`Seen`): a lease covers this pod's pace within its caps;
 * a local share is 1/pods of what the fleet had left when last seen, and
 * nothing of a window the pod knows nothing of.
 */
import { UNKNOWN_FLEET_PODS, type Units } from './lease-settings.js';

/** The fleet's spent and held totals, per unit, as a pod knows them. */
export interface Seen {
  spent: Units;
  held: Units;
}

/**
 * What a lease of unit `u` should cover beyond what is in flight and waiting: `demand` (this pod's pace), within
 * its caps: the fleet's leases add up to at most `maxLeaseShare` of the limit (each pod 1/pods of it), and near
 * the limit to half of what is left.
 */
export function leaseTarget(limit: number, seen: Seen | undefined, u: number, held: number, pods: number, maxLeaseShare: number, demand: number): number {
  const room = seen ? Math.max(0, limit - seen.spent[u]! - seen.held[u]! + held) : limit;
  return Math.max(0, Math.min(demand, (limit * maxLeaseShare) / pods, room / (2 * pods)));
}

/** A pod's local share of each unit while the store is away: 1/pods of what the fleet had left when last seen (pods unknown: UNKNOWN_FLEET_PODS); nothing, unseen. */
export function localShare(limits: Units, seen: Seen | undefined, pods: number | undefined): Units {
  const n = Math.max(1, pods ?? UNKNOWN_FLEET_PODS);
  return limits.map((limit, u) => (seen ? Math.max(0, limit - seen.spent[u]! - seen.held[u]!) / n : 0));
}
