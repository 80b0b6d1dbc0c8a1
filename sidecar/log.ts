/**
 * Structured JSON logs (pino). Request lines carry outcomes and timings only:
 * no bodies, no headers, no query strings, so no prompt text and no credentials
 * can reach them (and no per-line redaction is needed on the hot path).
 */
import { pino, type Logger } from 'pino';

/** How late a buffered line may reach stdout in a quiet pod. */
const FLUSH_INTERVAL_MS = 250;

/**
 * Lines are buffered up to 4 KiB instead of one write syscall each (~12% less
 * CPU per request, bench/), and flushed at least every 250 ms; call `flush()`
 * before exiting.
 */
export function createLogger(level = process.env.BREAKWATER_LOG_LEVEL ?? 'info', component = 'sidecar'): Logger {
  const log = pino({ level, base: { component } }, pino.destination({ dest: 1, sync: false, minLength: 4096 }));
  setInterval(() => log.flush(), FLUSH_INTERVAL_MS).unref();
  return log;
}
