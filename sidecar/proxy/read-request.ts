/**
 * Reading an app's request once, as it arrives: the body buffered up to the
 * replay cap (past it, handed on as a stream that is sent once), and the
 * fields of a JSON body the sidecar acts on.
 */
import type { IncomingMessage } from 'node:http';
import { PassThrough, type Readable } from 'node:stream';
import type { BodyLease } from './body-budget.js';

export type Body = { body: Buffer | null; stream?: Readable };

/** The body would take the request-body budget past its limit: nothing more is read. */
export const OVER_BUDGET = Symbol('over budget');

/**
 * Buffers the body up to `max` bytes, taking them from `lease`: all at once
 * when the length is declared, else chunk by chunk. A body declared longer
 * than `max` is handed on as the request itself, sent once; one that only
 * turns out longer comes back as a stream that replays what was read and
 * the rest. OVER_BUDGET if the budget has no room for it.
 */
export function readBody(req: IncomingMessage, max: number, lease: BodyLease): Promise<Body | typeof OVER_BUDGET> {
  const declared = Number(req.headers['content-length']);
  if (declared > max) return Promise.resolve({ body: null, stream: req });
  const takenUpFront = Number.isFinite(declared);
  if (takenUpFront && !lease.take(declared)) return Promise.resolve(OVER_BUDGET);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', reject);
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
    req.on('error', reject);
  });
}

/** The app's model, as the sidecar keeps it (breaker keys, headers, logs): longer ones are cut here, once. */
const MAX_MODEL_CHARS = 256;

/** A top-level "model" found by peeking, no longer than MAX_MODEL_CHARS. */
const PEEKED_MODEL = new RegExp(`"model"\\s*:\\s*"((?:[^"\\\\]|\\\\.){1,${MAX_MODEL_CHARS}})"`);

/** Bodies up to this size are parsed whole to read the fields the sidecar acts on. */
const PARSE_LIMIT = 256 * 1024;
/** Larger ones are only peeked at: SDKs write top-level scalars such as model before or after the long messages. */
const PEEK_BYTES = 4096;

function numberOrUndefined(value: unknown): number | undefined {
  return typeof value === 'number' && value > 0 ? value : undefined;
}

export interface BodyFields {
  model?: string;
  maxTokens?: number;
  stream?: boolean;
  jsonMode?: boolean;
  /** How many choices a stream must finish (OpenAI's `n`, at most MAX_CHOICES). */
  choices?: number;
  /** The app asked an OpenAI stream for its usage (stream_options.include_usage). */
  usageAsked?: boolean;
}

/** The most choices the sidecar keeps track of in one stream. */
const MAX_CHOICES = 128;

/** Fields of a JSON request body the sidecar acts on: the model (breaker scope), the output token cap (perOutputToken), stream and JSON mode. */
export function inspectBody(body: Buffer | null): BodyFields {
  if (!body || body[0] !== 0x7b /* { */) return {};
  if (body.length > PARSE_LIMIT) {
    const edges = body.toString('utf8', 0, PEEK_BYTES) + '\n' + body.toString('utf8', body.length - PEEK_BYTES);
    const model = PEEKED_MODEL.exec(edges)?.[1];
    const maxTokens = /"(?:max_tokens|max_completion_tokens|max_output_tokens|num_predict)"\s*:\s*([0-9]+)/.exec(edges)?.[1];
    const stream = /"stream"\s*:\s*(true|false)/.exec(edges)?.[1];
    return { model, maxTokens: maxTokens === undefined ? undefined : Number(maxTokens), stream: stream === undefined ? undefined : stream === 'true' };
  }
  try {
    const json = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
    const options = json.options as Record<string, unknown> | undefined;
    return {
      model: typeof json.model === 'string' ? json.model.slice(0, MAX_MODEL_CHARS) : undefined,
      maxTokens: numberOrUndefined(json.max_tokens) ?? numberOrUndefined(json.max_completion_tokens) ?? numberOrUndefined(json.max_output_tokens) ?? numberOrUndefined(options?.num_predict),
      stream: typeof json.stream === 'boolean' ? json.stream : undefined,
      choices: Number.isSafeInteger(json.n) && (json.n as number) > 1 ? Math.min(json.n as number, MAX_CHOICES) : undefined,
      usageAsked: (json.stream_options as { include_usage?: unknown } | undefined)?.include_usage === true || undefined,
      jsonMode: /^json_(object|schema)$/.test((json.response_format as { type?: string } | undefined)?.type ?? '') || json.format === 'json' || typeof json.format === 'object' || undefined,
    };
  } catch {
    return {}; // not JSON after all: the upstream will say so
  }
}
