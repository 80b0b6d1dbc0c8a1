/**
 * The order in which an upstream's endpoints are offered the next attempt:
 * its `loadBalancing` (round-robin; weighted, by smooth weighted round-robin
 * as nginx does it; least-outstanding, ties rotating), and, with adaptive
 * limits, the endpoints at their limit after those with room: a small server
 * that refuses at once would otherwise draw least-outstanding's traffic, and
 * the retries of what it refused, while a large one sits idle.
 */
import type { EndpointConfig, UpstreamConfig } from '../../config/index.js';
import type { AdaptiveLimit } from '../../resilience/index.js';

/** What the balancer reads of an endpoint (upstream-state.ts's Endpoint). */
interface Endpoint {
  readonly index: number;
  readonly config: EndpointConfig;
  outstanding: number;
  limit?: AdaptiveLimit;
}

export class Balancer<E extends Endpoint> {
  private turn = 0;
  /** Smooth weighted round-robin state, one per endpoint. */
  private readonly currentWeights: number[];

  constructor(
    private readonly how: UpstreamConfig['loadBalancing'],
    private readonly endpoints: readonly E[],
  ) {
    this.currentWeights = endpoints.map(() => 0);
  }

  /** The endpoints in the order they are offered the next attempt. */
  order(): readonly E[] {
    const all = this.endpoints;
    if (all.length === 1) return all;
    const order = this.balanced(all);
    const roomy = (e: E) => e.outstanding < e.limit!.limit;
    if (!all[0]!.limit || order.every(roomy)) return order;
    return [...order.filter(roomy), ...order.filter((e) => !roomy(e))];
  }

  private balanced(all: readonly E[]): E[] {
    switch (this.how) {
      case 'round-robin': {
        const start = this.turn++ % all.length;
        return [...all.slice(start), ...all.slice(0, start)];
      }
      case 'weighted': {
        const total = all.reduce((sum, e) => sum + e.config.weight, 0);
        all.forEach((e, i) => (this.currentWeights[i]! += e.config.weight));
        const best = all.reduce((a, b) => (this.currentWeights[b.index]! > this.currentWeights[a.index]! ? b : a));
        this.currentWeights[best.index]! -= total;
        return [best, ...all.filter((e) => e !== best)];
      }
      case 'least-outstanding': {
        const start = this.turn++ % all.length; // ties rotate
        return [...all.slice(start), ...all.slice(0, start)].sort((a, b) => a.outstanding - b.outstanding);
      }
    }
  }
}
