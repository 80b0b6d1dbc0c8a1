/**
 * During a mid-stream recovery, each upstream tier is asked to continue the
 * text the app already has, where its policy says it can
 * (streamRecovery.continuation): the text goes as a trailing assistant
 * message, and the stream that comes back says how much of it the request
 * carried, so the recovering stream relays only what follows. A tier that
 * cannot be asked, or refuses the continuation with a 4xx (a model without
 * prefill, a prompt now too long), is sent the original request: its new answer is then regenerated
 * and verified. The refusal itself never reaches the app.
 */
import type { Layer } from '../handler.js';
import { continuationRequest } from '../tier-request.js';

export const continuation: Layer = (inner) => async (req, ctx) => {
  if (req.continuation === undefined) return inner(req, ctx);
  const original = { ...req, continuation: undefined };
  const style = req.upstream.config.streamRecovery.continuation;
  const asked = style === 'off' ? undefined : continuationRequest(req, ctx.dialect, style);
  if (!asked || !ctx.memory.take(asked.request.body!.length)) return inner(original, ctx);
  const outcome = await inner(asked.request, ctx);
  if (outcome.kind === 'stream') return { ...outcome, continues: asked.carried };
  // A longer prompt may also pass a server's context check that the original passed.
  if (outcome.kind === 'answer' && (outcome.failure === 'client-error' || outcome.failure === 'context-length')) return inner(original, ctx);
  return outcome;
};
