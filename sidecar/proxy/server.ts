/**
 * The data plane's HTTP server: routes `/<upstream>/<path>` to a configured
 * upstream (and nowhere else), reads and parses the request once, and hands it
 * to the pipeline. Any failure still gets an answer: no request hangs.
 */
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { PassThrough, type Readable } from 'node:stream';
import { parseDuration } from '../../api/index.js';
import type { SidecarState } from '../sidecar-state.js';
import { forward, type PipelineEnv } from './forward.js';
import type { ProxyRequest } from './proxy-request.js';
import { writeLocalError } from './respond.js';
import { upstreamHeaders } from './tier-request.js';

const DROPPED_REQUEST_HEADERS = new Set([
  'host',
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'expect',
  'content-length',
  'x-breakwater-priority',
  'x-breakwater-timeout',
]);
/** The app's headers without those that are not forwarded. */
function appHeaders(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const out: IncomingHttpHeaders = {};
  for (const [key, value] of Object.entries(headers)) if (!DROPPED_REQUEST_HEADERS.has(key)) out[key] = value;
  return out;
}

type Body = { body: Buffer | null; stream?: Readable };

/** Buffers the body up to `max` bytes; past that, hands back a stream that replays what was read and the rest. */
function readBody(req: IncomingMessage, max: number): Promise<Body> {
  if (Number(req.headers['content-length']) > max) return Promise.resolve({ body: null, stream: req });
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', reject);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      chunks.push(chunk);
      if (size <= max) return;
      cleanup();
      req.pause();
      const replay = new PassThrough();
      for (const c of chunks) replay.write(c);
      req.pipe(replay);
      resolve({ body: null, stream: replay });
    };
    const onEnd = () => {
      cleanup();
      resolve({ body: chunks.length === 0 ? null : chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size) });
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', reject);
  });
}

/** Bodies up to this size are parsed whole to read the fields the sidecar acts on. */
const PARSE_LIMIT = 256 * 1024;
/** Larger ones are only peeked at: SDKs write top-level scalars such as model before or after the long messages. */
const PEEK_BYTES = 4096;

function numberOrUndefined(value: unknown): number | undefined {
  return typeof value === 'number' && value > 0 ? value : undefined;
}

/** Fields of a JSON request body the sidecar acts on: the model (breaker scope) and the output token cap (perOutputToken). */
export function inspectBody(body: Buffer | null): { model?: string; maxTokens?: number; stream?: boolean; jsonMode?: boolean } {
  if (!body || body[0] !== 0x7b /* { */) return {};
  if (body.length > PARSE_LIMIT) {
    const edges = body.toString('utf8', 0, PEEK_BYTES) + '\n' + body.toString('utf8', body.length - PEEK_BYTES);
    const model = /"model"\s*:\s*"((?:[^"\\]|\\.){1,256})"/.exec(edges)?.[1];
    const maxTokens = /"(?:max_tokens|max_completion_tokens|num_predict)"\s*:\s*([0-9]+)/.exec(edges)?.[1];
    const stream = /"stream"\s*:\s*(true|false)/.exec(edges)?.[1];
    return { model, maxTokens: maxTokens === undefined ? undefined : Number(maxTokens), stream: stream === undefined ? undefined : stream === 'true' };
  }
  try {
    const json = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
    const options = json.options as Record<string, unknown> | undefined;
    return {
      model: typeof json.model === 'string' ? json.model : undefined,
      maxTokens: numberOrUndefined(json.max_tokens) ?? numberOrUndefined(json.max_completion_tokens) ?? numberOrUndefined(options?.num_predict),
      stream: typeof json.stream === 'boolean' ? json.stream : undefined,
      jsonMode: /^json_(object|schema)$/.test((json.response_format as { type?: string } | undefined)?.type ?? '') || json.format === 'json' || typeof json.format === 'object' || undefined,
    };
  } catch {
    return {}; // not JSON after all: the upstream will say so
  }
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

export interface ProxyServer {
  server: Server;
  /** Requests being handled now. */
  readonly inFlight: number;
  /** Stop taking new work: new requests on open connections are still answered, with connection: close. */
  startDraining(): void;
}

export function createProxyServer(state: SidecarState, env: PipelineEnv): ProxyServer {
  let inFlight = 0;
  let draining = false;

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = req.url ?? '/';
    let nameEnd = 1;
    while (nameEnd < url.length && url[nameEnd] !== '/' && url[nameEnd] !== '?') nameEnd++;
    const name = url.slice(1, nameEnd);
    const rest = url[nameEnd] === '/' ? url.slice(nameEnd) : `/${url.slice(nameEnd)}`;
    const upstream = state.upstream(name);
    if (!upstream) {
      const known = state.config ? [...state.config.upstreams.keys()] : [];
      const message = state.config
        ? `no upstream named "${name}"; known upstreams: ${known.join(', ')} (call http://127.0.0.1:15001/<upstream>/<path>)`
        : 'no config loaded yet';
      writeLocalError(res, 'openai', state.config ? 404 : 503, state.config ? 'unknown_upstream' : 'overloaded', message);
      req.resume();
      return;
    }
    const api = upstream.config.api;
    const priorities = state.config!.priorities;
    const priorityName = header(req, 'x-breakwater-priority');
    const priority = priorityName === undefined ? priorities.defaultIndex : priorities.classes.findIndex((c) => c.name === priorityName);
    if (priority < 0) {
      const names = priorities.classes.map((c) => c.name).join(', ');
      writeLocalError(res, api, 400, 'invalid_request', `x-breakwater-priority "${priorityName}" is not a class of this policy (${names})`);
      req.resume();
      return;
    }
    let totalMs = upstream.config.timeouts.totalMs;
    const timeoutHeader = header(req, 'x-breakwater-timeout');
    if (timeoutHeader !== undefined) {
      let asked: number;
      try {
        asked = parseDuration(timeoutHeader);
      } catch {
        writeLocalError(res, api, 400, 'invalid_request', `x-breakwater-timeout "${timeoutHeader}" is not a duration such as 500ms or 30s`);
        req.resume();
        return;
      }
      totalMs = Math.min(totalMs, asked); // may only shorten
    }
    const startedAt = env.clock.now();
    const appGone = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) appGone.abort();
    });
    const { body, stream } = await readBody(req, upstream.config.retry.maxBodyBytes);
    const forwarded = appHeaders(req.headers);
    const { stream: asked, ...fields } = inspectBody(body);
    const request: ProxyRequest = {
      upstream,
      method: req.method ?? 'GET',
      appPath: rest,
      appHeaders: forwarded,
      // Ollama streams unless told not to; the others only when asked.
      stream: asked ?? (api === 'ollama' && rest.startsWith('/api/')),
      headers: upstreamHeaders(forwarded, upstream, body, stream ? header(req, 'content-length') : undefined),
      body,
      bodyStream: stream,
      ...fields,
      priority,
      startedAt,
      deadline: startedAt + totalMs,
      signal: appGone.signal,
    };
    if (draining) res.setHeader('connection', 'close');
    await forward(request, res, env);
  }

  const server = createServer({ keepAliveTimeout: 65_000, requestTimeout: 0 }, (req, res) => {
    inFlight++;
    handle(req, res)
      .catch((err: unknown) => {
        env.log.error({ err }, 'request failed inside the sidecar');
        if (!res.headersSent) writeLocalError(res, 'openai', 502, 'upstream_unavailable', 'the sidecar failed to handle this request');
        else res.destroy();
      })
      .finally(() => inFlight--);
  });
  return {
    server,
    get inFlight() {
      return inFlight;
    },
    startDraining() {
      draining = true;
      server.close();
      server.closeIdleConnections();
    },
  };
}
