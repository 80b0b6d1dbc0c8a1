/**
 * The request for one upstream of a chain: the app's request with that
 * upstream's own credentials in place of the app's when the policy sets them,
 * optionally another model; and the request as degraded mode sends it.
 * The app's credentials go to the upstream it addressed and nowhere else: a
 * fallback tier gets its own credentials from the policy, or none.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Dialect } from '../dialects/dialect.js';
import type { ProxyRequest } from '../handler.js';
import type { UpstreamState } from './upstream-state.js';

/**
 * A header or query parameter whose name says it carries a secret: any name with a word such as key, token,
 * auth, secret, signature, session or cookie (Azure API Management's Ocp-Apim-Subscription-Key, AWS's
 * X-Amz-Security-Token, gateways' x-litellm-api-key and helicone-auth, SAS `sig`), matched by its words
 * rather than listed, since every gateway names its own.
 */
const SECRET_NAME = /(?:^|[-_.])(?:auth\w*|[a-z]*key|[a-z]*token|secret|sig|signature|session\w*|cookie|password|passwd|credentials?)(?:$|[-_.])/i;
/** Identities with a provider whose names say nothing of a secret. */
const APP_IDENTITIES = new Set(['openai-organization', 'openai-project', 'code' /* Azure Functions' key */]);

/** Names with such a word that carry no secret, and that the upstream needs. */
const NOT_SECRETS = new Set(['sec-websocket-key', 'idempotency-key', 'keep-alive']);

const isCredential = (name: string) => (SECRET_NAME.test(name) && !NOT_SECRETS.has(name.toLowerCase())) || APP_IDENTITIES.has(name.toLowerCase());

function withoutCredentials(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const out: IncomingHttpHeaders = {};
  for (const key in headers) if (!isCredential(key)) out[key] = headers[key];
  return out;
}

/** The headers for `upstream`: the app's (less its credentials when the policy sets the upstream's own), plus the upstream's credentials. */
export function upstreamHeaders(appHeaders: IncomingHttpHeaders, upstream: UpstreamState, body: Buffer | null, streamedLength?: string): IncomingHttpHeaders {
  const auth = upstream.config.auth;
  const out: IncomingHttpHeaders = auth ? withoutCredentials(appHeaders) : { ...appHeaders };
  // Compressed answers would hide stream events, terminators and usage from the sidecar.
  out['accept-encoding'] = 'identity';
  if (auth?.value !== undefined) out[auth.header.toLowerCase()] = auth.value;
  if (body) out['content-length'] = String(body.length);
  else if (streamedLength !== undefined) out['content-length'] = streamedLength;
  return out;
}

/** The body as a JSON object, or undefined when it is not one. */
function parsed(body: Buffer | null): Record<string, any> | undefined {
  if (!body) return undefined;
  try {
    const json = JSON.parse(body.toString('utf8')) as unknown;
    return typeof json === 'object' && json !== null && !Array.isArray(json) ? (json as Record<string, any>) : undefined;
  } catch {
    return undefined;
  }
}

/** The JSON as a body, or undefined when it cannot be written back (nested too deep for the stack). */
function serialised(json: Record<string, any>): Buffer | undefined {
  try {
    return Buffer.from(JSON.stringify(json));
  } catch {
    return undefined;
  }
}

function withBody(req: ProxyRequest, body: Buffer, changes: Partial<ProxyRequest> = {}): ProxyRequest {
  const next = { ...req, ...changes, body };
  return { ...next, headers: upstreamHeaders(req.appHeaders, next.upstream, body) };
}

/** The request as degraded mode sends it (see the dialect's limitOutput). */
export function limitOutput(req: ProxyRequest, dialect: Dialect, maxTokens: number, temperature: number): ProxyRequest {
  const json = parsed(req.body);
  if (!json) return req;
  dialect.limitOutput(json, maxTokens, temperature);
  const body = serialised(json);
  return body ? withBody(req, body, { maxTokens: Math.min(req.maxTokens ?? maxTokens, maxTokens) }) : req;
}

/**
 * The request asking its upstream to continue the text a recovery delivered, in `style` (see the
 * dialect's continueWith), with how many characters of it the request carries; undefined when it
 * cannot be asked (nothing but text of one channel can be carried).
 */
export function continuationRequest(req: ProxyRequest, dialect: Dialect, style: 'prefill' | 'continue-final-message'): ProxyRequest | undefined {
  const text = req.resume?.delivered.text;
  const json = text && parsed(req.body);
  const carried = json && dialect.continueWith(json, text.text, style);
  const body = carried === undefined ? undefined : serialised(json!);
  return body && withBody(req, body, { resume: { ...req.resume!, carried } });
}

/** The app's path with its query's credentials left out. */
function withoutQueryCredentials(path: string): string {
  const q = path.indexOf('?');
  if (q < 0) return path;
  const query = new URLSearchParams(path.slice(q + 1));
  const names = [...query.keys()].filter(isCredential);
  if (names.length === 0) return path;
  for (const name of names) query.delete(name);
  const rest = query.toString();
  return path.slice(0, q) + (rest ? `?${rest}` : '');
}

/** The path an upstream is sent: the app's, with the upstream's fixed api-version (Azure) in place of the app's, if it has one. */
export function upstreamPath(upstream: UpstreamState, appPath: string): string {
  const version = upstream.config.apiVersion;
  if (version === undefined) return appPath;
  const q = appPath.indexOf('?');
  const query = new URLSearchParams(q < 0 ? '' : appPath.slice(q + 1));
  query.set('api-version', version);
  return `${q < 0 ? appPath : appPath.slice(0, q)}?${query.toString()}`;
}

/** The request for another upstream of the chain (optionally with another model, set where the dialect keeps it), without the app's credentials (headers and query). */
export function requestFor(req: ProxyRequest, dialect: Dialect, upstream: UpstreamState, model?: string): ProxyRequest {
  const tier = { ...req, upstream, appPath: withoutQueryCredentials(req.appPath), appHeaders: withoutCredentials(req.appHeaders) };
  const json = model === undefined ? undefined : parsed(req.body);
  if (json) dialect.setModel(json, model!);
  const body = json && serialised(json);
  if (body) return withBody(tier, body, { model });
  return { ...tier, model: model ?? req.model, headers: upstreamHeaders(tier.appHeaders, upstream, req.body) };
}
