/**
 * A tier's span: one for each upstream tier the chain tries (the addressed
 * upstream, a fallback, a hedge sent to another upstream, a tier a recovery
 * tries), inside the request's span (a recovery's, or the first tier's for a
 * hedge). The layers of the tier put their decisions on it as they make them
 * (retries and their waits, waits for a slot or the rate limit, the hedge's
 * result); it ends with the tier's outcome: why retrying stopped, whether the
 * breaker refused, whether a budget was spent. Its retry events number the
 * attempts made in this tier (the retry layer leaves out a recovery's break,
 * which is in an earlier tier's span).
 */
import type { ProxyRequest, RequestContext } from '../proxy/handler.js';
import type { CallEnd } from '../proxy/holding.js';
import type { TraceScope } from '../proxy/trace-scope.js';
import { BW, bounded, GEN_AI } from './genai.js';

/** The span of `req`'s tier, inside `parent`. */
export function startTier(parent: TraceScope, req: ProxyRequest, ctx: RequestContext): TraceScope {
  const name = req.upstream.config.name;
  const role = req.resume ? 'recovery' : req.hedged ? 'hedge' : name === ctx.primary ? 'primary' : 'fallback';
  return parent.child(`tier ${name}`, 'internal', { [BW.upstream]: name, [BW.tierRole]: role, [GEN_AI.requestModel]: bounded(req.model) });
}

/** Ends a tier's span with the tier's outcome. */
export function endTier(span: TraceScope, end: CallEnd): void {
  if (end.kind === 'threw') return span.end('_OTHER');
  if (end.kind === 'stream-ended') {
    span.set({ [BW.outcome]: end.end.kind === 'complete' ? 'stream' : end.end.kind });
    return span.end(end.end.kind === 'failed' ? end.end.failure : undefined);
  }
  const { outcome } = end;
  if (outcome.kind === 'cancelled') {
    span.set({ [BW.outcome]: 'cancelled' });
    return span.end();
  }
  span.set({
    [BW.outcome]: outcome.kind === 'local' ? outcome.code : outcome.failure === undefined ? 'answer' : 'failed',
    [BW.failureClass]: outcome.failure,
    [GEN_AI.httpStatus]: outcome.status,
    [BW.retryStopped]: outcome.kind === 'answer' ? outcome.stopped : undefined,
    [BW.breakerState]: outcome.kind === 'local' && outcome.refusedBy === 'breaker' ? 'open' : undefined,
    [BW.budget]: outcome.failure === 'budget-exhausted' ? 'exhausted' : undefined,
  });
  span.end(outcome.failure);
}
