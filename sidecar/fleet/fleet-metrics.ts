/**
 * The fleet's instruments, registered in the sidecar's registry beside the
 * others (metrics.ts): how long requests waited for the shared store, and,
 * read when scraped, whether it is in use, how many pods share the limits,
 * and which counters spend a local share because it is not.
 */
import { Gauge, Histogram, type Registry } from 'prom-client';
import type { FleetStatus } from './fleet.js';

/** Leaves an unlabelled gauge without a sample (prom-client's reset() gives one of 0): absent, as unknown is not 0. */
const absent = (gauge: Gauge) => void ((gauge as unknown as { hashMap: object }).hashMap = {});

export interface FleetMetricSources {
  status(): FleetStatus;
  pods(): number | undefined;
  /** Each fleet counter: its kind (budget or rate-limit), scope (policy or upstream), upstream ("" for the policy) and mode. */
  counters(): Iterable<{ kind: string; scope: string; upstream: string; mode: string }>;
}

export function fleetGauges(registry: Registry, sources: FleetMetricSources) {
  return {
    storeWait: new Histogram({
      name: 'breakwater_fleet_store_wait_seconds',
      help: 'How long requests whose pod\'s lease could not cover them waited for the shared store (at most 50 ms by design; past it they spend a local share).',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.06, 0.075, 0.1, 0.25],
      registers: [registry],
    }),
    storeUp: new Gauge({
      name: 'breakwater_fleet_store_up',
      help: 'Whether the shared store of spec.sharedState answers (1) or not (0: down, hanging or not yet connected; fleet limits spend local shares); absent without one.',
      registers: [registry],
      collect() {
        const { store } = sources.status();
        if (store !== 'off') this.set(store === 'ready' ? 1 : 0);
        else absent(this);
      },
    }),
    pods: new Gauge({
      name: 'breakwater_fleet_pods',
      help: 'How many pods share the policy\'s fleet limits, as the controller or the shared store last said; absent while unknown.',
      registers: [registry],
      collect() {
        const pods = sources.pods();
        if (pods !== undefined) this.set(pods);
        else absent(this);
      },
    }),
    localShare: new Gauge({
      name: 'breakwater_fleet_local_share',
      help: 'Per fleet budget and rate limit: 1 while this sidecar spends a local share because the shared store is away, else 0.',
      labelNames: ['kind', 'scope', 'upstream'] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const c of sources.counters()) this.set({ kind: c.kind, scope: c.scope, upstream: c.upstream }, c.mode === 'local-share' ? 1 : 0);
      },
    }),
  };
}
