/** One app request as the pipeline carries it, parsed once when it arrives. */
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import type { UpstreamState } from './upstream-state.js';

export interface ProxyRequest {
  upstream: UpstreamState;
  method: string;
  /** The app's path after /<upstream>, with the query. */
  appPath: string;
  /** The app's headers, less hop-by-hop and x-breakwater-* ones (before any upstream's credentials). */
  appHeaders: IncomingHttpHeaders;
  /** Whether the app asked for a streamed answer. */
  stream: boolean;
  /** Whether the app asked for JSON output (response_format, or Ollama's format). */
  jsonMode?: boolean;
  /** Headers to send upstream (hop-by-hop, x-breakwater-* and the app's credentials when auth replaces them are gone). */
  headers: IncomingHttpHeaders;
  /** The whole body when it fits retry.maxBodyBytes, so attempts can replay it. */
  body: Buffer | null;
  /** A body too large to buffer: sent once, never retried. */
  bodyStream?: Readable;
  model?: string;
  maxTokens?: number;
  /** Index of the priority class (0 = most important). */
  priority: number;
  /** Clock time the request arrived and the time its total timeout ends. */
  startedAt: number;
  deadline: number;
  /** Aborts when the app goes away. */
  signal: AbortSignal;
}
