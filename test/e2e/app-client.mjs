/**
 * The app of the end-to-end tests: an LLM client that calls $OPENAI_BASE_URL
 * in two loops, plain and streaming, and appends every outcome as a JSON line
 * to /outcomes/$POD_NAME.jsonl (a hostPath the test reads). It records
 * whether its sidecar was ready when it started and when it exits, and which
 * key reached the model (the model's `x-mock-credential` fingerprint), and the
 * tokens a plain answer says it used. APP_CALLS=plain runs the plain loop
 * alone (a budget's app, whose every token the app sees), APP_MAX_TOKENS
 * sets max_tokens. On SIGTERM
 * it starts nothing new, lets the requests in flight finish, and exits.
 * Runs in the image's Node from a ConfigMap; plain JavaScript on purpose.
 */
import { appendFileSync } from 'node:fs';

const base = process.env.OPENAI_BASE_URL;
const file = `/outcomes/${process.env.POD_NAME}.jsonl`;
const record = (outcome) => appendFileSync(file, `${JSON.stringify({ t: Date.now(), ...outcome })}\n`);
const sidecarReady = () => fetch('http://127.0.0.1:15021/readyz').then((r) => r.status, (err) => String(err.cause?.code ?? err));
/** A stream of 20 events 100 ms apart: long enough to be in flight when the pod is told to stop. */
const STREAM = JSON.stringify({ kind: 'ok', chunks: 20, chunkDelayMs: 100 });

let stopping = false;
let inFlight = 0;

async function call(kind) {
  const started = Date.now();
  inFlight++;
  try {
    const response = await fetch(`${base}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(kind === 'stream' ? { 'x-mock-behavior': STREAM } : {}) },
      body: JSON.stringify({ model: 'm', stream: kind === 'stream', messages: [{ role: 'user', content: 'hi' }], ...(process.env.APP_MAX_TOKENS ? { max_tokens: Number(process.env.APP_MAX_TOKENS) } : {}) }),
      signal: AbortSignal.timeout(30_000),
    });
    const text = await response.text();
    const events = kind === 'stream' ? text.split('\n\n').filter((e) => e.startsWith('data: {')).length : undefined;
    const ok = response.status === 200 && (kind === 'plain' ? text.includes('"choices"') : text.includes('data: [DONE]') && !text.includes('"error"'));
    const credential = response.headers.get('x-mock-credential') ?? undefined;
    const tokens = kind === 'plain' && ok ? JSON.parse(text).usage?.total_tokens : undefined;
    const retryAfter = response.headers.get('retry-after') ?? undefined;
    record({ kind, ok, status: response.status, ms: Date.now() - started, events, credential, tokens, retryAfter, ...(ok ? {} : { body: text.slice(0, 300) }) });
  } catch (err) {
    record({ kind, ok: false, ms: Date.now() - started, error: String(err.cause?.code ?? err.message ?? err).slice(0, 300) });
  } finally {
    inFlight--;
  }
}

async function loop(kind, gapMs) {
  while (!stopping) {
    await call(kind);
    await new Promise((resolve) => setTimeout(resolve, gapMs));
  }
}

record({ event: 'start', sidecarReady: await sidecarReady() });
process.on('SIGTERM', () => {
  stopping = true;
  record({ event: 'sigterm', inFlight });
});
await Promise.all(process.env.APP_CALLS === 'plain' ? [loop('plain', 100)] : [loop('plain', 100), loop('stream', 50)]);
record({ event: 'exit', sidecarReady: await sidecarReady() });
process.exit(0);
