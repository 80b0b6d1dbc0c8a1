/**
 * Running a request twice at once (a hedge, a first-token race): each run
 * under its own abort signal, which the app's going away also aborts, so the
 * loser can be cancelled at once (its attempt aborted, or the stream it
 * answered with given up); each reports to a RequestReport of its own, whose
 * attempts are added to the request's when it settles (what else it reports
 * stays its own).
 */
import { AbortFlag, type Clock } from '../resilience/index.js';
import type { Handler, Outcome, ProxyRequest, RequestContext } from './handler.js';
import { RequestReport } from './request-report.js';

export interface Launched {
  result: Promise<Outcome>;
  startedAt: number;
  /** Aborts the run, or gives up the stream it answered with. Idempotent. */
  cancel(): void;
}

export function launch(inner: Handler, req: ProxyRequest, ctx: RequestContext, clock: Clock): Launched {
  const controller = new AbortFlag();
  // The app's going away aborts the run for as long as it lasts, the stream it answered with included.
  if (ctx.signal.aborted) controller.abort();
  else ctx.signal.addEventListener('abort', () => controller.abort(), { once: true });
  const child: RequestContext = { ...ctx, signal: controller, report: new RequestReport() };
  const result = inner(req, child).finally(() => ctx.report.attempted(child.report.attempts));
  result.catch(() => {}); // a loser's end may never be awaited: a throw there must not become an unhandled rejection
  let cancelled = false;
  return {
    result,
    startedAt: clock.now(),
    cancel() {
      if (cancelled) return;
      cancelled = true;
      controller.abort();
      result.then(
        (o) => o.kind === 'stream' && o.body.cancel(),
        () => {},
      );
    },
  };
}

/** `work`'s outcome if it comes within `ms`, else undefined. */
export function within(work: Promise<Outcome>, ms: number, clock: Clock): Promise<Outcome | undefined> {
  return new Promise((resolve, reject) => {
    const timer = clock.setTimer(() => resolve(undefined), ms);
    work.then(
      (o) => {
        clock.clearTimer(timer);
        resolve(o);
      },
      (err: unknown) => {
        clock.clearTimer(timer);
        reject(err);
      },
    );
  });
}
