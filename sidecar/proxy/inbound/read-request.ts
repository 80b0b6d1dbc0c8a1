/**
 * Reading an app's request once, as it arrives: the body buffered up to the
 * replay cap (past it, handed on as a stream that is sent once), and the
 * fields of a JSON body the sidecar acts on, as the request's dialect reads them.
 */
import type { IncomingMessage } from 'node:http';
import { shortMembers } from '../../../lib/index.js';
import { PassThrough, type Readable } from 'node:stream';
import type { BodyLease } from './body-budget.js';
import type { Dialect, RequestFields } from '../dialects/dialect.js';

export type Body = { body: Buffer | null; stream?: Readable };

/** The body would take the request-body budget past its limit: nothing more is read. */
export const OVER_BUDGET = Symbol('over budget');

/** The app went away (or its connection failed) before its body was whole. */
export const ABANDONED = Symbol('abandoned');

/**
 * Buffers the body up to `max` bytes, taking them from `lease`: all at once
 * when the length is declared, else chunk by chunk. A body declared longer
 * than `max` is handed on as the request itself, sent once; one that only
 * turns out longer comes back as a stream that replays what was read and
 * the rest. OVER_BUDGET if the budget has no room for it; ABANDONED if the app left before its body
 * was whole. It never rejects.
 */
export function readBody(req: IncomingMessage, max: number, lease: BodyLease): Promise<Body | typeof OVER_BUDGET | typeof ABANDONED> {
  const declared = Number(req.headers['content-length']);
  if (declared > max) return Promise.resolve({ body: null, stream: req });
  const takenUpFront = Number.isFinite(declared);
  if (takenUpFront && !lease.take(declared)) return Promise.resolve(OVER_BUDGET);
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onGone);
      req.off('close', onGone);
    };
    const onGone = () => {
      cleanup();
      resolve(ABANDONED);
    };
    const onData = (chunk: Buffer) => {
      if (!takenUpFront && !lease.take(chunk.length)) {
        cleanup();
        resolve(OVER_BUDGET);
        return;
      }
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
    req.on('error', onGone);
    // A connection that closes before the end of the body ends it with 'close' alone.
    req.on('close', onGone);
  });
}

/** Bodies up to this size are parsed whole to read the fields the sidecar acts on. */
const PARSE_LIMIT = 256 * 1024;
/** In a larger one, only members this short are parsed: model, stream, max_tokens and their kin, never the messages. */
const SHORT_MEMBER = 64 * 1024;

/**
 * The fields of a JSON request body the sidecar acts on, as the request's dialect reads them (a body that
 * is not a JSON object has none). A large body is read for its short top-level members only, wherever
 * they are in it (SDKs write stream, max_tokens and model before or after long messages and tools).
 */
export function inspectBody(body: Buffer | null, dialect: Dialect): RequestFields {
  if (!body) return {};
  let json: unknown;
  if (body.length > PARSE_LIMIT) json = shortMembers(body, SHORT_MEMBER);
  else if (body[0] === 0x7b /* { */) {
    try {
      json = JSON.parse(body.toString('utf8'));
    } catch {
      return {}; // not JSON after all: the upstream will say so
    }
  }
  return typeof json === 'object' && json !== null && !Array.isArray(json) ? dialect.readRequest(json as Record<string, any>) : {};
}
