/**
 * The request for one upstream of a chain: the app's request with that
 * upstream's base path and credentials (the app's own never go to an upstream
 * that has credentials in the policy) and, for a fallback tier that says so, a
 * rewritten model.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { ProxyRequest } from './proxy-request.js';
import type { UpstreamState } from './upstream-state.js';

/** Credentials an app may send; dropped when the policy sets the upstream's own. */
const APP_CREDENTIALS = new Set(['authorization', 'x-api-key', 'api-key']);

export function upstreamHeaders(appHeaders: IncomingHttpHeaders, upstream: UpstreamState, body: Buffer | null, streamedLength?: string): IncomingHttpHeaders {
  const auth = upstream.config.auth;
  const out: IncomingHttpHeaders = {};
  for (const [key, value] of Object.entries(appHeaders)) if (!(auth && APP_CREDENTIALS.has(key))) out[key] = value;
  // Compressed answers would hide stream events, terminators and usage from the sidecar.
  out['accept-encoding'] = 'identity';
  if (auth) out[auth.header.toLowerCase()] = auth.value;
  if (body) out['content-length'] = String(body.length);
  else if (streamedLength !== undefined) out['content-length'] = streamedLength;
  return out;
}

function withModel(body: Buffer | null, model: string): Buffer | null {
  if (!body) return body;
  try {
    return Buffer.from(JSON.stringify({ ...(JSON.parse(body.toString('utf8')) as object), model }));
  } catch {
    return body; // not JSON: nothing to rewrite
  }
}

/** The request for another upstream of the chain (optionally with another model). */
export function requestFor(req: ProxyRequest, upstream: UpstreamState, model?: string): ProxyRequest {
  const body = model === undefined ? req.body : withModel(req.body, model);
  return {
    ...req,
    upstream,
    body,
    model: model ?? req.model,
    path: upstream.config.basePath + req.appPath,
    headers: upstreamHeaders(req.appHeaders, upstream, body),
  };
}
