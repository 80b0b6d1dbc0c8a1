/**
 * The pod admission webhook's own HTTPS port. It is kept apart from the
 * config port that every sidecar reaches, so that a NetworkPolicy can let
 * sidecars reach their config and keep them away from the webhook (whose
 * answers show policies' upstreams, env values and Secret names).
 * With `clientCa`, only callers with a client certificate signed by it (the
 * API server, configured to present one) complete the TLS handshake.
 */
import { createServer, type Server } from 'node:https';
import type { Logger } from 'pino';

/** An AdmissionReview carries a whole pod. */
const MAX_REVIEW_BYTES = 4 * 1024 * 1024;

export interface WebhookServerOptions {
  cert: string | Buffer;
  key: string | Buffer;
  /** CA that the callers' client certificates must chain to; without it, any caller may connect. */
  clientCa?: string | Buffer;
  admit: (review: never) => Promise<unknown>;
  log: Logger;
}

export function createWebhookServer(options: WebhookServerOptions): Server {
  const clientAuth = options.clientCa ? { requestCert: true, rejectUnauthorized: true, ca: options.clientCa } : {};
  return createServer({ cert: options.cert, key: options.key, ...clientAuth }, (req, res) => {
    void (async () => {
      if (req.method !== 'POST' || new URL(req.url ?? '/', 'https://webhook').pathname !== '/mutate-pods') {
        return void res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}');
      }
      let size = 0;
      const chunks: Buffer[] = [];
      for await (const chunk of req) {
        size += (chunk as Buffer).length;
        if (size > MAX_REVIEW_BYTES) return void res.writeHead(413).end();
        chunks.push(chunk as Buffer);
      }
      const review = await options.admit(JSON.parse(Buffer.concat(chunks).toString('utf8')) as never);
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(review));
    })().catch((err: unknown) => {
      options.log.error({ err: (err as Error).message }, 'admission request failed');
      if (!res.headersSent) res.writeHead(400, { 'content-type': 'application/json' }).end('{"error":"bad admission review"}');
    });
  });
}
