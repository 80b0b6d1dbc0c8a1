/**
 * Mid-stream recovery: a stream from the chain below is relayed through a
 * RecoveringStream, which, when the stream breaks after content reached the
 * app, runs the chain again for the same request: the addressed upstream
 * with its retries, then each fallback tier its `when` admits. The break
 * counts as a failed attempt of the upstream that broke (so after a stall,
 * a timeout, the chain goes straight to a fallback where one would take it;
 * after a reset or an error event, that upstream's retry policy decides),
 * and each tier continues the text delivered where it can
 * (layers/continuation.ts) or regenerates and verifies. Bounded by the
 * upstream's streamRecovery.maxRecoveries (how often the app's stream is
 * resumed) and the request's deadline.
 */
import type { Metrics } from '../../metrics.js';
import type { Clock } from '../../resilience/index.js';
import type { Layer } from '../handler.js';
import { enabledWhen, failureOf } from '../handler.js';
import { RecoveringStream } from '../streams/recovering-stream.js';
import type { TraceScope } from '../trace-scope.js';

export function streamRecovery(clock: Clock, metrics: Metrics): Layer {
  return enabledWhen((config) => config.streamRecovery.maxRecoveries > 0, (inner) => async (req, ctx) => {
    const outcome = await inner(req, ctx);
    const { maxRecoveries } = req.upstream.config.streamRecovery;
    // An answer relayed as bytes has no events to take up: it is not recovered.
    if (outcome.kind !== 'stream' || maxRecoveries === 0 || !outcome.framing) return outcome;
    const { withSequence } = ctx.dialect;
    // Traced: each recovery is a span inside the request's, holding the tiers it tries; it ends with its result.
    let recovery: TraceScope | undefined;
    const body = new RecoveringStream(outcome.body, outcome.upstream, {
      framing: outcome.framing,
      renumber: withSequence && ((event, sequence) => withSequence(event.fields!.event, event.fields!.data, sequence)),
      maxRecoveries,
      async again(delivered, broke) {
        if (clock.now() >= ctx.deadline || ctx.signal.aborted) return undefined;
        recovery = ctx.trace?.child('stream recovery', 'internal', { 'breakwater.upstream': broke.upstream, 'breakwater.failure_class': broke.failure });
        const next = await inner({ ...req, resume: { delivered, broke } }, recovery ? { ...ctx, trace: recovery } : ctx);
        if (next.kind === 'stream') return { kind: 'stream', body: next.body, upstream: next.upstream, strategy: next.strategy ?? 'regenerate' };
        return { kind: 'failed', failure: failureOf(next) };
      },
      onRecovery: (result, strategy) => {
        metrics.streamRecoveries.inc({ upstream: req.upstream.config.name, strategy, result });
        if (result === 'recovered') ctx.report.recovered();
        const decided = { 'breakwater.recovery.strategy': strategy, 'breakwater.recovery.result': result };
        if (!recovery) ctx.trace?.event('breakwater.recovery', decided); // refused: no new run was made
        recovery?.set(decided);
        recovery?.end(result === 'recovered' ? undefined : result);
        recovery = undefined;
      },
    });
    return { ...outcome, body };
  });
}
