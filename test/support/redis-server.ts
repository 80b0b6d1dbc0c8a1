/**
 * A real redis-server on 127.0.0.1 for the tests (Debian's, installed by
 * scripts/ensure-redis.sh when missing), without persistence: started on a
 * free port (or a given one, to come back where it was), killed, paused
 * (SIGSTOP: it keeps its connections and answers nothing) and resumed; and a
 * "Redis" that accepts connections and never answers.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Socket } from 'node:net';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { freePort } from './ports.js';

const ENSURE_REDIS = fileURLToPath(new URL('../../scripts/ensure-redis.sh', import.meta.url));

export interface RedisServer {
  port: number;
  url: string;
  process: ChildProcess;
  /** Kills it (SIGKILL): its counts are gone. */
  kill(): Promise<void>;
  /** SIGSTOP: connections stay open and nothing is answered. */
  pause(): void;
  resume(): void;
}

export async function startRedis(t: TestContext | undefined, port?: number, ...args: string[]): Promise<RedisServer> {
  const binary = execFileSync('bash', [ENSURE_REDIS], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim().split('\n').at(-1)!;
  const at = port ?? (await freePort());
  const server = spawn(binary, ['--port', String(at), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    server.stdout!.on('data', (d) => {
      out += d;
      if (out.includes('Ready to accept connections')) resolve();
    });
    server.on('exit', (code) => reject(new Error(`redis-server exited ${code}: ${out}`)));
  });
  server.stdout!.resume();
  const exited = new Promise((r) => server.once('exit', r));
  const kill = async () => {
    if (server.exitCode === null && server.signalCode === null) {
      server.kill('SIGCONT');
      server.kill('SIGKILL');
    }
    await exited;
  };
  t?.after(kill);
  return { port: at, url: `redis://127.0.0.1:${at}`, process: server, kill, pause: () => void server.kill('SIGSTOP'), resume: () => void server.kill('SIGCONT') };
}

/** A server that accepts TCP connections and never answers a byte (a Redis that hangs); closed when the test ends. */
export async function startSilentServer(t: TestContext): Promise<string> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return `redis://127.0.0.1:${(server.address() as { port: number }).port}`;
}
