/**
 * mock-upstream/ — a model server that misbehaves on purpose: answers in OpenAI, Anthropic or
 * Ollama shape (by path), plain or streamed, and on cue returns an error
 * status with Retry-After, hangs before headers, sends headers and no data,
 * stalls or resets mid-stream, ends a stream without its terminator, resets
 * the connection, or answers slowly. Behaviours come from the request header
 * `x-mock-behavior` (JSON), else a queue the owner fills, else a default.
 * Used by the demo, the tests and the benchmark; it listens on loopback only.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { dialectOfPath, type Dialect } from '../proxy/dialects/dialect.js';
import { openai } from '../proxy/dialects/openai.js';

export type Behavior =
  | { kind: 'ok'; text?: string; delayMs?: number; chunks?: number; chunkDelayMs?: number }
  | { kind: 'status'; status: number; body?: string; headers?: Record<string, string>; delayMs?: number }
  | { kind: 'hang' }
  | { kind: 'headers-then-hang' }
  | { kind: 'stream-then-hang'; afterChunks: number }
  | { kind: 'stream-then-reset'; afterChunks: number }
  | { kind: 'stream-without-terminator'; afterChunks: number }
  | { kind: 'reset' };

export interface RecordedRequest {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  body: Record<string, unknown>;
}

export interface MockUpstreamOptions {
  port?: number;
  host?: string;
  /** Share (0–100) of requests without a scripted behaviour that fail instead of getting the default. */
  failPercent?: number;
  /** How they fail: one behaviour, or one picked at random from a list. */
  failure?: Behavior | Behavior[];
  random?: () => number;
  /** Answers each request with `x-mock-credential`: the first 12 hex digits of the SHA-256 of its credential header (or `none`), so a test sees which key arrived without the key. */
  fingerprintCredentials?: boolean;
}

/** The fingerprint `fingerprintCredentials` answers with: of `authorization`, else `x-api-key`. */
export function credentialFingerprint(value: string | undefined): string {
  return value === undefined ? 'none' : createHash('sha256').update(value).digest('hex').slice(0, 12);
}

/** A dialect that composes answers (every text-completion path). */
type Composing = Required<Pick<Dialect, 'composeAnswer' | 'composeStream'>> & Dialect;

/** The path's dialect when it composes answers; any other path (health, embeddings…) is answered as a chat completion. */
const composing = (dialect: Dialect): Composing => (dialect.composeAnswer && dialect.composeStream ? (dialect as Composing) : (openai as Composing));

const DEFAULT_TEXT = 'Hello from the Breakwater mock upstream.';

export class MockUpstream {
  readonly requests: RecordedRequest[] = [];
  /** Requests whose client went away before the answer was complete. */
  abandoned = 0;
  defaultBehavior: Behavior = { kind: 'ok' };
  private readonly queue: Behavior[] = [];
  private readonly sockets = new Set<Socket>();
  private constructor(
    private readonly server: Server,
    private readonly options: MockUpstreamOptions,
  ) {}

  static async start(options: MockUpstreamOptions = {}): Promise<MockUpstream> {
    const server = createServer({ keepAliveTimeout: 65_000 });
    const mock = new MockUpstream(server, options);
    server.on('request', (req, res) => void mock.handle(req, res));
    server.on('connection', (socket) => {
      mock.sockets.add(socket);
      socket.on('close', () => mock.sockets.delete(socket));
    });
    await new Promise<void>((resolve) => server.listen(options.port ?? 0, options.host ?? '127.0.0.1', resolve));
    return mock;
  }

  get url(): string {
    const { address, port } = this.server.address() as AddressInfo;
    return `http://${address}:${port}`;
  }

  /** Closes the keep-alive connections that carry no request now. */
  closeIdleConnections(): void {
    this.server.closeIdleConnections();
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** Queues behaviours for the next requests, in order. */
  enqueue(...behaviors: Behavior[]): void {
    this.queue.push(...behaviors);
  }

  /** Forgets recorded requests and queued behaviours; the default becomes ok. */
  reset(): void {
    this.requests.length = 0;
    this.queue.length = 0;
    this.defaultBehavior = { kind: 'ok' };
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private pick(req: IncomingMessage): Behavior {
    const header = req.headers['x-mock-behavior'];
    if (typeof header === 'string') return JSON.parse(header) as Behavior;
    const queued = this.queue.shift();
    if (queued) return queued;
    const { failPercent = 0, failure, random = Math.random } = this.options;
    if (failure && random() * 100 < failPercent) return Array.isArray(failure) ? failure[Math.floor(random() * failure.length)]! : failure;
    return this.defaultBehavior;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    let body: Record<string, unknown> = {};
    try {
      body = raw ? (JSON.parse(raw) as Record<string, unknown>) : {};
    } catch {
      body = { unparsed: raw };
    }
    const path = req.url ?? '/';
    this.requests.push({ method: req.method ?? 'GET', path, headers: req.headers, body });
    res.on('close', () => {
      if (!res.writableFinished) this.abandoned++;
    });
    if (this.options.fingerprintCredentials) {
      const credential = req.headers.authorization ?? req.headers['x-api-key'];
      res.setHeader('x-mock-credential', credentialFingerprint(typeof credential === 'string' ? credential : undefined));
    }
    const behavior = this.pick(req);
    const dialect = dialectOfPath(path);
    const model = typeof body.model === 'string' ? body.model : 'mock-model';
    const wait = (ms = 0) => new Promise((r) => setTimeout(r, ms));

    switch (behavior.kind) {
      case 'hang':
        return; // never answers; the socket stays open until the client gives up
      case 'reset':
        req.socket.destroy();
        return;
      case 'status': {
        await wait(behavior.delayMs);
        const text = behavior.body ?? dialect.upstreamErrorBody(behavior.status);
        res.writeHead(behavior.status, { 'content-type': 'application/json', ...behavior.headers }).end(text);
        return;
      }
      case 'headers-then-hang':
        res.writeHead(200, { 'content-type': dialect.streamContentType });
        res.flushHeaders();
        return;
      default:
        if (behavior.kind === 'ok') await wait(behavior.delayMs);
        if (path.startsWith('/v1/models')) {
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ object: 'list', data: [{ id: 'mock-model', object: 'model' }] }));
          return;
        }
        await this.answer(req, res, composing(dialect), model, body, behavior);
    }
  }

  private async answer(req: IncomingMessage, res: ServerResponse, dialect: Composing, model: string, body: Record<string, unknown>, behavior: Behavior): Promise<void> {
    const text = (behavior.kind === 'ok' && behavior.text) || DEFAULT_TEXT;
    const usage = { input: 12, output: text.split(' ').length };
    const cutAfter = 'afterChunks' in behavior ? behavior.afterChunks : undefined;
    if (!(typeof body.stream === 'boolean' ? body.stream : dialect.streamsByDefault)) {
      const complete = dialect.composeAnswer(model, text, usage);
      if (behavior.kind === 'ok') {
        res.writeHead(200, { 'content-type': 'application/json' }).end(complete);
        return;
      }
      // A plain answer cut short the way the stream would have been.
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(complete.slice(0, complete.length / 2));
      if (behavior.kind === 'stream-then-reset') res.write('', () => setTimeout(() => req.socket.destroy(), 20));
      if (behavior.kind === 'stream-without-terminator') res.end();
      return;
    }
    const pieceCount = behavior.kind === 'ok' ? (behavior.chunks ?? 5) : Math.max((cutAfter ?? 4) + 1, 5);
    const words = text.split(' ');
    const pieces = Array.from({ length: pieceCount }, (_, i) => words.slice((i * words.length) / pieceCount, ((i + 1) * words.length) / pieceCount).join(' ') + ' ');
    const events = dialect.composeStream(model, pieces, usage);
    res.writeHead(200, { 'content-type': dialect.streamContentType, 'cache-control': 'no-cache' });
    const delay = behavior.kind === 'ok' ? (behavior.chunkDelayMs ?? 0) : 0;
    for (const e of events.start) res.write(e);
    for (let i = 0; i < events.content.length; i++) {
      if (i === cutAfter) {
        // Let what was written reach the client before the connection drops.
        if (behavior.kind === 'stream-then-reset') res.write('', () => setTimeout(() => req.socket.destroy(), 20));
        if (behavior.kind === 'stream-without-terminator') res.end();
        return; // stream-then-hang: stays open, silent
      }
      if (delay > 0) await new Promise((r) => setTimeout(r, delay));
      if (res.destroyed) return;
      res.write(events.content[i]);
    }
    for (const e of events.end) res.write(e);
    res.end();
  }
}
