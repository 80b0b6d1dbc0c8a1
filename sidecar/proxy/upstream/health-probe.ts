/**
 * One active health probe of an endpoint: GET `path` from its origin, and
 * what the answer says. Model servers answer differently: vLLM and TGI with a
 * bare status (503 while loading), Ollama with 200 on `/`, llama.cpp with
 * JSON whose `status` or `slots_idle` says when no slot is free. Healthy is a
 * 2xx whose JSON, if any, says neither that it is loading or erring nor that
 * no slot is free. The app's credentials are never sent; at most the first
 * 4 KiB of the answer are read, and a longer answer is judged by them alone
 * (healthyPrefix).
 */
import type { UpstreamClient } from './upstream-client.js';

const MAX_BODY_BYTES = 4096;
const UNHEALTHY_STATUS = /no slot|loading|unavailable|error|unhealthy|starting/i;
/** A JSON object whose first member is a string `status` (llama.cpp's `{"status":"ok",…}`): its value. */
const LEADING_STATUS = /^\s*\{\s*"status"\s*:\s*"((?:[^"\\]|\\.)*)"/;
/** llama.cpp's `slots_idle: 0` (no free slot), wherever it appears. */
const NO_IDLE_SLOT = /"slots_idle"\s*:\s*0(?![\d.eE])/;

const is2xx = (status: number) => status >= 200 && status <= 299;

/** Whether a whole answer says healthy. */
export function healthyAnswer(status: number, body: string): boolean {
  if (!is2xx(status)) return false;
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    return true; // a plain-text 2xx ("Ollama is running", or an empty body)
  }
  if (typeof json !== 'object' || json === null) return true;
  const said = json as { status?: unknown; slots_idle?: unknown };
  if (typeof said.status === 'string' && UNHEALTHY_STATUS.test(said.status)) return false;
  return said.slots_idle !== 0;
}

/**
 * Whether an answer longer than the probe reads says healthy, from its first
 * bytes: only if it is JSON that opens with its `status` (so that the status
 * read is the answer's own, not one nested in some detail), that status is
 * not a bad one, and no `slots_idle: 0` shows among those bytes. Anything
 * else is too long to judge, and a server whose health answer cannot be
 * judged is not taken as healthy on its status code alone.
 */
export function healthyPrefix(status: number, prefix: string): boolean {
  if (!is2xx(status)) return false;
  const said = LEADING_STATUS.exec(prefix);
  if (!said || UNHEALTHY_STATUS.test(said[1]!)) return false;
  return !NO_IDLE_SLOT.test(prefix);
}

export function healthProbe(client: UpstreamClient, path: string): (signal: AbortSignal) => Promise<boolean> {
  return (signal) =>
    new Promise((resolve) => {
      const request = client.request(path, { method: 'GET', headers: { accept: 'application/json' }, signal }, (res) => {
        const chunks: Buffer[] = [];
        let bytes = 0;
        const text = () => Buffer.concat(chunks).toString('utf8');
        res.on('data', (chunk: Buffer) => {
          const room = MAX_BODY_BYTES - bytes;
          chunks.push(chunk.length > room ? chunk.subarray(0, room) : chunk);
          bytes += Math.min(chunk.length, room);
          if (chunk.length <= room) return;
          resolve(healthyPrefix(res.statusCode ?? 0, text())); // judged by its first bytes; the rest is never read
          res.destroy();
        });
        res.on('end', () => resolve(healthyAnswer(res.statusCode ?? 0, text())));
        res.on('close', () => resolve(false)); // destroyed or aborted before the end: no verdict but unhealthy
      });
      request.on('error', () => resolve(false));
      request.end();
    });
}
