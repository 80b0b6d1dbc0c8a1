/**
 * What the layers report of one request to the server, which puts it in the
 * answer's x-breakwater-* headers and the request's log line
 * (inbound/write-outcome.ts, inbound/observe.ts). Each fact has its writers,
 * named on its one method; the server reads the facts through RequestFacts,
 * which has no method. A run side by side with another (side-by-side.ts)
 * reports to a RequestReport of its own, whose attempts are added to the
 * request's when it settles.
 */
import type { Mode } from '../resilience/index.js';

/** Which side answered when a hedge was sent: the hedge (won) or the first attempt (lost). */
export type HedgeResult = 'won' | 'lost';

/** The facts of a request, as the server reads them. */
export interface RequestFacts {
  /** The sidecar's mode for the request ('normal' until the degradation layer has chosen). */
  readonly mode: Mode;
  /** Attempts sent upstream so far, over the whole chain. */
  readonly attempts: number;
  /** Set when a hedge was sent: whether it or the first attempt answered. */
  readonly hedge: HedgeResult | undefined;
  /** Mid-stream recoveries of the request's stream that succeeded. */
  readonly recoveries: number;
}

export class RequestReport implements RequestFacts {
  #mode: Mode = 'normal';
  #attempts = 0;
  #hedge: HedgeResult | undefined;
  #recoveries = 0;

  get mode(): Mode {
    return this.#mode;
  }

  get attempts(): number {
    return this.#attempts;
  }

  get hedge(): HedgeResult | undefined {
    return this.#hedge;
  }

  get recoveries(): number {
    return this.#recoveries;
  }

  /** Written by the degradation layer, once: the mode it chose (the layers below it read it from the request, ProxyRequest.mode). */
  servedIn(mode: Mode): void {
    this.#mode = mode;
  }

  /**
   * Written by the layers that send attempts: the retry layer (each attempt the breaker let through), the hedge
   * layer (a hedge to the same upstream; -1 when the breaker refused it after all: a hedge into another upstream's
   * tier is counted by that tier's retry layer), and side-by-side.ts (a run's, when it settles).
   */
  attempted(count = 1): void {
    this.#attempts += count;
  }

  /** Written by the layers that send a hedge: the hedge layer, and fallback's first-token race. */
  hedged(result: HedgeResult): void {
    this.#hedge = result;
  }

  /** Written by the stream-recovery layer: a recovery of the request's stream succeeded. */
  recovered(): void {
    this.#recoveries++;
  }
}
