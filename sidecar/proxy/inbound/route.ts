/**
 * Where an app's request goes, decided before anything is read of its body:
 * `/<upstream>/<path>` to a configured upstream and nowhere else, with a path
 * that cannot leave the upstream's base path, the priority class and total
 * timeout its x-breakwater-* headers ask for, and the dialect it speaks; or
 * the refusal to write instead. Also the headers that go on to the upstream
 * (not the connection's, nor the app's words to the sidecar).
 */
import type { IncomingMessage } from 'node:http';
import { parseDuration } from '../../../api/index.js';
import { CONNECTION_HEADERS, firstHeader } from '../../../lib/index.js';
import type { RuntimeConfig } from '../../config/index.js';
import { dialectFor, type Dialect } from '../dialects/dialect.js';
import { openai } from '../dialects/openai.js';
import type { ProxyRequest } from '../handler.js';
import type { UpstreamState } from '../upstream/upstream-state.js';

/** What routing reads: the config in force and the live upstreams. */
export interface RouteDeps {
  config(): RuntimeConfig | undefined;
  upstream(name: string): UpstreamState | undefined;
}

/** Request headers never forwarded: connection headers, the host, and the app's words to the sidecar. */
const NOT_FORWARDED = new Set([...CONNECTION_HEADERS, 'host', 'expect', 'x-breakwater-priority', 'x-breakwater-timeout']);

export function appHeaders(req: IncomingMessage): ProxyRequest['appHeaders'] {
  const out: ProxyRequest['appHeaders'] = {};
  const { headers } = req;
  for (const key in headers) if (!NOT_FORWARDED.has(key)) out[key] = headers[key];
  return out;
}

/** A `.` or `..` path segment, also percent-encoded: it would leave the upstream's base path. */
const DOT_SEGMENT = /(^|\/)(\.|%2e){1,2}(\/|\?|$)/i;
/**
 * A separator an upstream or a proxy before it may decode or read as `/` (an encoded slash, a backslash,
 * encoded or not), or an encoded NUL: each can hide a `..` segment from the check above.
 */
const HIDDEN_SEPARATOR = /%2f|%5c|\\|%00|#/i;

/** A request the sidecar refuses before the pipeline: the answer to write instead. */
export class Refusal {
  constructor(
    readonly status: number,
    readonly code: 'unknown_upstream' | 'overloaded' | 'invalid_request',
    readonly message: string,
    readonly dialect: Dialect = openai,
  ) {}
}

/** The upstream, priority class and total timeout a request asks for, or why it cannot have them. */
export interface Routed {
  upstream: UpstreamState;
  path: string;
  priority: number;
  totalMs: number;
  dialect: Dialect;
}

export function route(req: IncomingMessage, deps: RouteDeps): Refusal | Routed {
  const url = req.url ?? '/';
  let nameEnd = 1;
  while (nameEnd < url.length && url[nameEnd] !== '/' && url[nameEnd] !== '?') nameEnd++;
  const name = url.slice(1, nameEnd);
  const path = url[nameEnd] === '/' ? url.slice(nameEnd) : `/${url.slice(nameEnd)}`;
  const config = deps.config();
  const upstream = deps.upstream(name);
  if (!config) return new Refusal(503, 'overloaded', 'no config loaded yet');
  if (!upstream) {
    const known = [...config.upstreams.keys()].join(', ');
    return new Refusal(404, 'unknown_upstream', `no upstream named "${name.slice(0, 64)}"; known upstreams: ${known} (call http://127.0.0.1:15001/<upstream>/<path>)`);
  }
  const dialect = dialectFor(upstream.config.api, path, req.method);
  // A compressed body would hide its model, stream flag, caps and text from the sidecar, and its size from the guards.
  const encoding = firstHeader(req.headers, 'content-encoding')?.trim().toLowerCase();
  if (encoding && encoding !== 'identity' && (dialect.composeAnswer || upstream.config.guards.active)) {
    return new Refusal(415, 'invalid_request', `the sidecar reads request bodies: send this one without content-encoding (got ${encoding.slice(0, 32)})`, dialect);
  }
  const pathOnly = path.split('?', 1)[0]!;
  if (DOT_SEGMENT.test(pathOnly)) return new Refusal(400, 'invalid_request', 'the path may not hold "." or ".." segments', dialect);
  if (HIDDEN_SEPARATOR.test(pathOnly)) return new Refusal(400, 'invalid_request', 'the path may not hold an encoded slash, a backslash, an encoded NUL or a #', dialect);
  const { priorities } = config;
  const priorityName = firstHeader(req.headers, 'x-breakwater-priority');
  const priority = priorityName === undefined ? priorities.defaultIndex : priorities.classes.findIndex((c) => c.name === priorityName);
  if (priority < 0) {
    const names = priorities.classes.map((c) => c.name).join(', ');
    return new Refusal(400, 'invalid_request', `x-breakwater-priority "${priorityName!.slice(0, 64)}" is not a class of this policy (${names})`, dialect);
  }
  let totalMs = upstream.config.timeouts.totalMs;
  const timeoutHeader = firstHeader(req.headers, 'x-breakwater-timeout');
  if (timeoutHeader !== undefined) {
    let asked: number;
    try {
      asked = parseDuration(timeoutHeader);
    } catch {
      return new Refusal(400, 'invalid_request', `x-breakwater-timeout "${timeoutHeader.slice(0, 64)}" is not a duration such as 500ms or 30s`, dialect);
    }
    totalMs = Math.min(totalMs, asked); // may only shorten
  }
  return { upstream, path, priority, totalMs, dialect };
}
