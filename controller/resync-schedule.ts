/**
 * How often the controller resyncs (reconciles every policy, and re-sends
 * connected pods their config if it changed), and how old a status's
 * observedAt must be for a resync to rewrite it. An unchanged status is only
 * rewritten by a pass over its policy, so a status refresh shorter than the
 * resync would not be honoured: the resync runs at least twice per refresh
 * interval, and rewrites a status once it is one resync short of due, so
 * observedAt is never older than the refresh (plus a pass's own time) while
 * a controller runs.
 */
export function resyncSchedule(resyncMs: number, statusRefreshMs: number): { resyncMs: number; rewriteAfterMs: number } {
  const every = Math.min(resyncMs, statusRefreshMs / 2);
  return { resyncMs: every, rewriteAfterMs: statusRefreshMs - every };
}
