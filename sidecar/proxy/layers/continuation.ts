/**
 * During a mid-stream recovery, each upstream tier is asked to continue the
 * text the app already has, where its policy says it can
 * (streamRecovery.continuation) and all the app has is text: the text goes as
 * a trailing assistant message, and the attempt's seam relays only what
 * follows it. A tier that cannot be asked, that refuses the continuation with
 * a 4xx (a model without prefill, a prompt now too long), or whose
 * continuation does not continue (it restarts the answer or repeats its last
 * words: `diverged`) is sent the original request: its new answer is then
 * regenerated and verified. Neither the refusal nor the bad continuation
 * ever reaches the app.
 */
import { enabledWhen, type Layer } from '../handler.js';
import { continuationRequest } from '../upstream/tier-request.js';

export const continuation: Layer = enabledWhen((config) => config.streamRecovery.continuation !== 'off', (inner) => async (req, ctx) => {
  // A request that already carries the text (a hedge to another tier of a continued request) is not asked twice.
  if (!req.resume || req.resume.carried !== undefined) return inner(req, ctx);
  const style = req.upstream.config.streamRecovery.continuation;
  const asked = style === 'off' ? undefined : continuationRequest(req, ctx.dialect, style);
  if (!asked || !ctx.memory.take(asked.body!.length)) return inner(req, ctx);
  const outcome = await inner(asked, ctx);
  if (outcome.kind !== 'answer' && outcome.kind !== 'local') return outcome;
  // A longer prompt may also pass a server's context check that the original passed.
  if (outcome.failure === 'client-error' || outcome.failure === 'context-length' || outcome.failure === 'diverged') return inner(req, ctx);
  return outcome;
});
