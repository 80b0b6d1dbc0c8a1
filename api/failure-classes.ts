/** The failure classes of the contract: every upstream outcome that is not a success falls in one. */
export const FAILURE_CLASSES = [
  'rate-limited',
  'overloaded',
  'server-error',
  'timeout',
  'connect-failure',
  'reset',
  'context-length',
  'content-filter',
  'invalid-response',
  'diverged',
  'client-error',
] as const;

export type FailureClass = (typeof FAILURE_CLASSES)[number];
