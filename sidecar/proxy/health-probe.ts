/**
 * One active health probe of an endpoint: GET `path` from its origin, and
 * what the answer says. Model servers answer differently: vLLM and TGI with a
 * bare status (503 while loading), Ollama with 200 on `/`, llama.cpp with
 * JSON whose `status` or `slots_idle` says when no slot is free. Healthy is a
 * 2xx whose JSON, if any, says neither that it is loading or erring nor that
 * no slot is free. The app's credentials are never sent; the answer is read
 * up to 4 KiB.
 */
import type { Endpoint } from './upstream-state.js';

const MAX_BODY_CHARS = 4096;
const UNHEALTHY_STATUS = /no slot|loading|unavailable|error|unhealthy|starting/i;

export function healthyAnswer(status: number, body: string): boolean {
  if (status < 200 || status > 299) return false;
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

export function healthProbe(endpoint: Endpoint, path: string): (signal: AbortSignal) => Promise<boolean> {
  return (signal) =>
    new Promise((resolve) => {
      const request = endpoint.client.request(path, { method: 'GET', headers: { accept: 'application/json' }, signal }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          body += chunk;
          if (body.length <= MAX_BODY_CHARS) return;
          resolve(healthyAnswer(res.statusCode ?? 0, '')); // judged by its status alone
          res.destroy();
        });
        res.on('end', () => resolve(healthyAnswer(res.statusCode ?? 0, body)));
        res.on('close', () => resolve(false)); // destroyed or aborted before the end: no verdict but unhealthy
      });
      request.on('error', () => resolve(false));
      request.end();
    });
}
