/** Structured JSON logs (pino). Request lines carry outcomes and timings only: no prompt text, no credentials. */
import { pino, type Logger } from 'pino';

export function createLogger(level = process.env.BREAKWATER_LOG_LEVEL ?? 'info'): Logger {
  return pino({
    level,
    base: { component: 'sidecar' },
    redact: { paths: ['*.headers.authorization', '*.headers["x-api-key"]', '*.headers["api-key"]'], remove: true },
  });
}
