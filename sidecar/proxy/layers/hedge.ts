/**
 * Hedged requests (the upstream's `hedge`): when the first attempt has no
 * outcome yet (for a stream: no first content event) after the hedge delay,
 * one more attempt goes to the same upstream, or to the upstream (and model)
 * the policy names, through that upstream's whole tier as a fallback would
 * be: its input guards, token budget and prices, rate limit, bulkhead,
 * credentials and breaker (a hedge is never hedged again). The first good outcome wins and
 * the other attempt is cancelled at once: its request is aborted, or its
 * stream given up, so the upstream sees the cancel. A hedge is taken from the
 * retry budget (given back when the breaker refuses it) and goes through the
 * breaker like any attempt, so none is sent while the breaker is open. The
 * delay is fixed, or a percentile of the upstream's recent first-token times.
 */
import type { Metrics } from '../../metrics.js';
import { type Clock, LatencyWindow } from '../../resilience/index.js';
import { enabledWhen, refusedByBreaker, type Handler, type Layer, type Outcome } from '../handler.js';
import { launch, within, type Launched } from '../side-by-side.js';
import { requestFor } from '../upstream/tier-request.js';
import type { UpstreamState } from '../upstream/upstream-state.js';

/** A percentile delay needs at least this many first-token times; until then the fixed delay holds. */
const MIN_SAMPLES = 20;

const good = (o: Outcome) => o.kind === 'stream' || (o.kind === 'answer' && o.failure === undefined);

export interface HedgeDeps {
  clock: Clock;
  metrics: Metrics;
  /** The live upstreams of the config in force, for a hedge sent to another one. */
  upstream(name: string): UpstreamState | undefined;
  /** The tier a request to an upstream goes through, from the top: where a hedge to another upstream is sent. */
  tier: Handler;
}

export function hedge({ clock, metrics, upstream: live, tier }: HedgeDeps): Layer {
  const windows = new WeakMap<UpstreamState, LatencyWindow>();
  return enabledWhen((config) => config.hedge.delayMs > 0, (inner) => {
    const hedged: Handler = async (req, ctx) => {
      const { upstream } = req;
      const { delayMs, percentile } = upstream.config.hedge;
      let window = windows.get(upstream);
      if (!window) windows.set(upstream, (window = new LatencyWindow()));
      const delay = percentile > 0 && window.size >= MIN_SAMPLES ? Math.max(delayMs, window.percentile(percentile)!) : delayMs;
      /** An attempt's outcome, its time to first token recorded when it is good and came from this upstream. */
      const timed = (l: Launched, hedged: boolean, elsewhere = false) => {
        const done = l.result.then((outcome) => {
          if (good(outcome) && !elsewhere) window.record(outcome.kind === 'stream' ? outcome.timeToFirstDataMs : clock.now() - l.startedAt);
          return { outcome, hedged };
        });
        // The loser's end may never be awaited: a throw there must not become an unhandled rejection.
        done.catch(() => {});
        return done;
      };

      const first = launch(inner, req, ctx, clock);
      const firstDone = timed(first, false);
      const early = await within(
        firstDone.then((t) => t.outcome),
        delay,
        clock,
      );
      if (early !== undefined) return early;
      if (ctx.signal.aborted) return (await firstDone).outcome;
      const name = upstream.config.name;
      const settle = (outcome: Outcome, result: 'won' | 'lost' | 'failed' | 'refused') => {
        metrics.hedges.inc({ upstream: name, result });
        ctx.trace?.set({ 'breakwater.hedge.result': result });
        if (result === 'won' || result === 'lost') ctx.report.hedged(result);
        return outcome;
      };
      if (!upstream.budget.tryWithdraw()) {
        metrics.hedges.inc({ upstream: name, result: 'budget' });
        ctx.trace?.set({ 'breakwater.hedge.result': 'budget' });
        return (await firstDone).outcome;
      }
      const target = upstream.config.hedge.upstream === undefined ? undefined : live(upstream.config.hedge.upstream);
      const second = target ? launch(tier, { ...requestFor(req, ctx.dialect, target, upstream.config.hedge.model), hedged: true }, ctx, clock) : launch(inner, req, ctx, clock);
      const secondDone = timed(second, true, target !== undefined);
      // A hedge into another upstream's tier is counted by that tier's retry layer, in its run's report (added to this one when it settles).
      if (!target) ctx.report.attempted();
      try {
        const sooner = await Promise.race([firstDone, secondDone]);
        const [loser, later] = sooner.hedged ? [first, firstDone] : [second, secondDone];
        if (good(sooner.outcome)) {
          loser.cancel();
          return settle(sooner.outcome, sooner.hedged ? 'won' : 'lost');
        }
        const other = await later;
        const hedgeRefused = refusedByBreaker(sooner.hedged ? sooner.outcome : other.outcome);
        if (hedgeRefused) {
          upstream.budget.refund();
          if (!target) ctx.report.attempted(-1);
          return settle(sooner.hedged ? other.outcome : sooner.outcome, 'refused');
        }
        if (good(other.outcome)) return settle(other.outcome, other.hedged ? 'won' : 'lost');
        return settle(other.outcome, 'failed');
      } catch (err) {
        first.cancel();
        second.cancel();
        throw err;
      }
    };
    // A request its upstream does not hedge goes straight through, with no async step of this layer's.
    // Nor is a request that must not be sent twice (a pass-through POST).
    return (req, ctx) => (req.upstream.config.hedge.delayMs === 0 || req.bodyStream || req.hedged || !ctx.dialect.replaysSafely ? inner(req, ctx) : hedged(req, ctx));
  });
}
