/**
 * In degraded mode, each tier's request asks for less: its output-token cap
 * is clamped (or added) and its temperature set, as the policy's
 * `degradation.degraded` says. In other modes requests pass untouched.
 */
import type { Layer } from '../handler.js';
import { limitOutput } from '../upstream/tier-request.js';

export function degradedRequest(settings: () => { maxTokens: number; temperature: number }): Layer {
  return (inner) => (req, ctx) => {
    if (req.mode !== 'degraded') return inner(req, ctx);
    const { maxTokens, temperature } = settings();
    return inner(limitOutput(req, ctx.dialect, maxTokens, temperature), ctx);
  };
}
