/**
 * The request for one upstream of a chain: the app's request with that
 * upstream's credentials (the app's own never go to an upstream
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

/**
 * The request as degraded mode sends it: max_tokens (or max_completion_tokens,
 * or Ollama's num_predict) clamped, added when absent, and temperature set.
 */
export function degradedRequest(req: ProxyRequest, maxTokens: number, temperature: number): ProxyRequest {
  if (!req.body) return req;
  let json: Record<string, any>;
  try {
    json = JSON.parse(req.body.toString('utf8')) as Record<string, any>;
  } catch {
    return req;
  }
  const clamp = (v: unknown) => (typeof v === 'number' ? Math.min(v, maxTokens) : v);
  if (req.appPath.startsWith('/api/')) {
    json.options = { ...json.options, num_predict: clamp(json.options?.num_predict ?? maxTokens), temperature };
  } else {
    if (json.max_completion_tokens !== undefined) json.max_completion_tokens = clamp(json.max_completion_tokens);
    else json.max_tokens = clamp(json.max_tokens ?? maxTokens);
    json.temperature = temperature;
  }
  const body = Buffer.from(JSON.stringify(json));
  return { ...req, body, maxTokens: Math.min(req.maxTokens ?? maxTokens, maxTokens), headers: upstreamHeaders(req.appHeaders, req.upstream, body) };
}

/** The request for another upstream of the chain (optionally with another model). */
export function requestFor(req: ProxyRequest, upstream: UpstreamState, model?: string): ProxyRequest {
  const body = model === undefined ? req.body : withModel(req.body, model);
  return {
    ...req,
    upstream,
    body,
    model: model ?? req.model,
    headers: upstreamHeaders(req.appHeaders, upstream, body),
  };
}
