/**
 * The first-token race of a fallback chain (`timeouts.fallbackHedge`): a
 * stream whose tier has given no first content after the delay is also sent
 * to the next upstream tier; whichever gives content first (or a final
 * answer) wins, and the other is cancelled at once (side-by-side.ts).
 */
import type { Clock } from '../resilience/index.js';
import type { Handler, Outcome, ProxyRequest, RequestContext } from './handler.js';
import { launch, within, type Launched } from './side-by-side.js';

/** A final outcome: a stream that started, a good answer, or the app's own mistake (no other tier would do better). */
export const final = (o: Outcome) => o.kind === 'stream' || o.kind === 'cancelled' || (o.kind === 'answer' && (o.failure === undefined || o.failure === 'client-error'));

export interface RaceResult {
  outcome: Outcome;
  /** Whether the alternate was sent (then the chain has tried it, however it did). */
  raced: boolean;
  winner: 'first' | 'alternate';
}

/** Runs `first`, and after `delayMs` without a final outcome also `alternate`; the first final outcome wins (see the module's comment). */
export async function firstTokenRace(inner: Handler, first: ProxyRequest, alternate: () => ProxyRequest, ctx: RequestContext, delayMs: number, clock: Clock): Promise<RaceResult> {
  const a = launch(inner, first, ctx, clock);
  const early = await within(a.result, delayMs, clock);
  if (early !== undefined || ctx.signal.aborted || clock.now() >= ctx.deadline) return { outcome: early ?? (await a.result), raced: false, winner: 'first' };
  const b = launch(inner, alternate(), ctx, clock);
  const tagged = (side: Launched, winner: RaceResult['winner']) => side.result.then((outcome) => ({ outcome, winner }));
  try {
    const sooner = await Promise.race([tagged(a, 'first'), tagged(b, 'alternate')]);
    const [other, otherName] = sooner.winner === 'first' ? ([b, 'alternate'] as const) : ([a, 'first'] as const);
    if (final(sooner.outcome)) {
      other.cancel();
      return { ...sooner, raced: true };
    }
    const later = await tagged(other, otherName);
    // Neither final: the chain goes on from the alternate's failure.
    return final(later.outcome) || sooner.winner === 'alternate' ? { ...later, raced: true } : { ...sooner, raced: true };
  } catch (err) {
    a.cancel();
    b.cancel();
    throw err;
  }
}
