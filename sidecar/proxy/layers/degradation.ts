/**
 * Degradation mode: reads the sidecar's mode (normal, degraded, emergency)
 * for each request, hands it in with the request (ProxyRequest.mode) for the
 * inner layers to act on, tells the server (its x-breakwater-mode header),
 * and reports how the request went to the rolling window that drives the
 * mode. Emergency answers stay out of the window, so it drains and the mode
 * can recover.
 */
import type { DegradationMonitor } from '../../resilience/index.js';
import type { Layer } from '../handler.js';
import { holding, type CallEnd } from '../holding.js';

/** Failures the app or its policy caused (a budget spent): they say nothing about the upstreams' health. */
const APP_CAUSED = new Set(['client-error', 'context-length', 'content-filter', 'budget-exhausted']);

/** Whether a request that ended so counts as an error in the window. */
function countsAsError(end: CallEnd): boolean {
  switch (end.kind) {
    case 'threw':
      return true;
    case 'stream-ended':
      return end.end.kind === 'failed';
    case 'returned': {
      const { outcome } = end;
      if (outcome.kind === 'cancelled') return false;
      if (outcome.kind === 'answer' && outcome.composed) return outcome.composed === 'static';
      return outcome.failure !== undefined && !APP_CAUSED.has(outcome.failure);
    }
  }
}

export interface DegradationDeps {
  /** The monitor in force (replaced when its settings change). */
  monitor(): DegradationMonitor;
  /** Requests waiting in every bulkhead queue. */
  queued(): number;
}

export function degradation(deps: DegradationDeps): Layer {
  return (inner) => (req, ctx) => {
    const monitor = deps.monitor();
    const monitored = monitor.mode(deps.queued());
    // Emergency needs a tier it may serve; a chain without one keeps calling its upstreams, as in degraded mode.
    const mode = monitored === 'emergency' && req.upstream.config.emergencyChain.length === 0 ? 'degraded' : monitored;
    ctx.report.servedIn(mode);
    const moded = { ...req, mode };
    if (mode === 'emergency') return inner(moded, ctx);
    return holding(
      () => inner(moded, ctx),
      (end) => monitor.record(countsAsError(end)),
    );
  };
}
