/** Delay before a retry: exponential growth with a cap and a choice of jitter (AWS's "Exponential Backoff And Jitter"). */

export interface BackoffSettings {
  baseMs: number;
  maxMs: number;
  multiplier: number;
  jitter: 'full' | 'equal' | 'decorrelated' | 'none';
}

/**
 * The delay before retry number `retry` (1 for the first retry).
 * `previousMs` is the delay used before the last retry (decorrelated jitter grows from it).
 */
export function backoffDelay(settings: BackoffSettings, retry: number, previousMs: number, random: () => number = Math.random): number {
  const { baseMs, maxMs, multiplier, jitter } = settings;
  const exponential = Math.min(maxMs, baseMs * multiplier ** Math.max(0, retry - 1));
  switch (jitter) {
    case 'none':
      return exponential;
    case 'full':
      return random() * exponential;
    case 'equal':
      return exponential / 2 + (random() * exponential) / 2;
    case 'decorrelated': {
      const upper = Math.max(baseMs, Math.min(maxMs, Math.max(previousMs, baseMs) * 3));
      return Math.min(maxMs, baseMs + random() * (upper - baseMs));
    }
  }
}
