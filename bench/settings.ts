/**
 * What the bench measures with and against: its tools, the model server's address, and the run's size
 * (BENCH_SECONDS, BENCH_WARMUP_SECONDS, BENCH_ROUNDS, BENCH_STREAMS, BENCH_ONLY, BENCH_BASELINE).
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const NODE = process.execPath;
export const VEGETA = join(ROOT, '.cache/bin/vegeta');
export const STREAMS = join(ROOT, '.cache/bin/streams');
export const PORTKEY = join(ROOT, '.cache/peers/node_modules/@portkey-ai/gateway/build/start-server.js');
export const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
export const WARMUP_SECONDS = Number(process.env.BENCH_WARMUP_SECONDS ?? 3);
export const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
export const STREAM_COUNTS = (process.env.BENCH_STREAMS ?? '500,2000').split(',').filter(Boolean).map(Number);
/** Only these paths (and the floor), e.g. BENCH_ONLY=breakwater: for a quick look, not for figures. */
export const ONLY = process.env.BENCH_ONLY?.split(',');
export const CONNECTIONS = 32;
export const RATE = 500;
export const UPSTREAM = 'http://127.0.0.1:18090';
/** A git ref whose sidecar runs beside this one (before/after in one run). */
export const BASELINE = process.env.BENCH_BASELINE;
