/**
 * Keep-alive connections to one upstream origin, on Node's own HTTP client
 * (http or https by the origin's scheme). Node's client costs ~25 MiB less
 * resident memory than undici's, which matters in a sidecar in every pod, and
 * measured as fast on this pipeline (bench/).
 */
import http, { type ClientRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import https from 'node:https';

/**
 * How long a pooled connection may sit idle before it is closed. A connection to a backend that went away
 * without a word (a pod deleted behind a Service: its packets are dropped, no reset comes) is otherwise
 * taken from the pool later and hangs its request until the first-byte timeout; Node's own servers close
 * idle connections after 5 s anyway, and reusing one just then races their close.
 */
const IDLE_SOCKET_MS = 4_000;

/**
 * An agent whose idle timer runs only while a connection sits in the pool. Node's `timeout` option gives a
 * connection its timer from birth, and a connection with a timer re-arms it on every read: on a stream,
 * for every chunk. Here a new connection has none while it carries a request (the attempt's own timers
 * bound that), gets the idle timer when it is freed (keepSocketAlive: `timeout`, or less when the server's
 * Keep-Alive header says so), and loses it when it is taken again.
 */
function timedOnlyWhenIdle<A extends http.Agent>(agent: A): A {
  const create = agent.createConnection.bind(agent);
  const reuse = agent.reuseSocket.bind(agent);
  agent.createConnection = (options, callback) => create({ ...options, timeout: undefined }, callback);
  agent.reuseSocket = (socket, request) => {
    (socket as Socket).setTimeout(0);
    reuse(socket, request);
  };
  return agent;
}

export class UpstreamClient {
  private readonly agent: http.Agent;
  private readonly transport: typeof http | typeof https;
  private readonly hostname: string;
  private readonly port: number;

  constructor(origin: string) {
    const url = new URL(origin);
    const secure = url.protocol === 'https:';
    this.transport = secure ? https : http;
    this.hostname = url.hostname.replace(/^\[|\]$/g, '');
    this.port = Number(url.port) || (secure ? 443 : 80);
    // An idle pooled connection is closed after IDLE_SOCKET_MS (a request in progress is not: the agent's timeout only ends free sockets).
    const options = { keepAlive: true, keepAliveMsecs: 30_000, maxFreeSockets: 256, scheduling: 'lifo' as const, timeout: IDLE_SOCKET_MS };
    this.agent = timedOnlyWhenIdle(secure ? new https.Agent(options) : new http.Agent(options));
  }

  request(path: string, options: { method: string; headers: IncomingHttpHeaders; signal?: AbortSignal }, onResponse: (res: IncomingMessage) => void): ClientRequest {
    return this.transport.request({ hostname: this.hostname, port: this.port, path, agent: this.agent, ...options }, onResponse);
  }

  /** Closes every connection, in use or idle. */
  close(): void {
    this.agent.destroy();
  }
}
