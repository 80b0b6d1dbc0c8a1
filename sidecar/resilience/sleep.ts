/** A wait on the injectable clock that the app's going away cuts short. */
import type { AbortWatch } from './abort-flag.js';
import type { Clock } from './clock.js';

/** Waits `ms`; resolves false if `signal` aborted first. */
export function sleep(clock: Clock, ms: number, signal: AbortWatch): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve(false);
    const onAbort = () => {
      clock.clearTimer(timer);
      resolve(false);
    };
    const timer = clock.setTimer(() => {
      signal.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
