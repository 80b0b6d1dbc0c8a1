/**
 * The controller's config port (HTTPS): the config stream sidecars connect
 * to and where they report (see api/protocol.ts). Every request carries the
 * pod's projected token; a token bound to another pod than the one asked for
 * is refused, so a pod only ever gets its own config. (The admission webhook
 * has a port of its own: webhook-server.ts.)
 */
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { ConfigHub } from './config-hub.js';
import { TooManyReviews, type Authenticate } from './token-review.js';

const MAX_REPORT_BYTES = 256 * 1024;

function answer(res: ServerResponse, status: number, error?: string): void {
  if (error === undefined) res.writeHead(status).end();
  else res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ error }));
}

async function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new Error('body too large');
    chunks.push(chunk as Buffer);
  }
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

export function createConfigServer(options: {
  cert: string | Buffer;
  key: string | Buffer;
  authenticate: Authenticate;
  hub: ConfigHub;
  log: Logger;
}): Server {
  const { authenticate, hub, log } = options;
  return createServer({ cert: options.cert, key: options.key }, (req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'https://controller');
      const route = `${req.method} ${url.pathname}`;
      if (route !== 'GET /v1/config' && route !== 'POST /v1/report') return answer(res, 404, 'not found');
      const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
      if (!token) return answer(res, 401, 'a bearer token (the pod\'s projected service-account token) is required');
      let identity;
      try {
        identity = await authenticate(token, req.socket.remoteAddress ?? 'unknown');
      } catch (err) {
        if (err instanceof TooManyReviews) {
          res.setHeader('retry-after', String(Math.max(1, Math.ceil(err.retryAfterMs / 1000))));
          return answer(res, 429, err.message);
        }
        log.error({ err: (err as Error).message }, 'TokenReview failed');
        return answer(res, 503, 'cannot review tokens right now');
      }
      if (!identity) return answer(res, 401, 'token rejected: not a valid pod-bound token for audience breakwater.dev');
      const asked = url.searchParams.get('pod');
      if (asked !== identity.pod) return answer(res, 403, `the token is bound to pod ${identity.namespace}/${identity.pod}`);
      const pod = `${identity.namespace}/${identity.pod}`;
      if (route === 'GET /v1/config') {
        const detach = hub.attach(pod, res);
        req.on('close', detach);
        return;
      }
      let body: unknown;
      try {
        body = await readJson(req, MAX_REPORT_BYTES);
      } catch (err) {
        return answer(res, 400, `bad report: ${(err as Error).message}`);
      }
      const refused = hub.report(pod, body);
      if (refused) return answer(res, 400, `bad report: ${refused}`);
      answer(res, 204);
    })().catch((err: unknown) => {
      log.error({ err: (err as Error).message }, 'config request failed');
      if (!res.headersSent) answer(res, 500, 'internal error');
    });
  });
}
