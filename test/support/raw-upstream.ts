/**
 * An upstream that misbehaves at the byte level: a raw TCP server on
 * 127.0.0.1 that reads each request's head and then runs a script on the
 * socket (given the head, so one server can play many parts). It counts
 * requests, in all and per path, and closes every connection when the test
 * ends, or when asked.
 */
import { createServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import type { TestContext } from 'node:test';

export interface RawUpstream {
  url: string;
  /** Requests whose head arrived. */
  requests: number;
  /** The same, per request path. */
  byPath: Map<string, number>;
  /** Destroys every connection now. */
  closeAll(): void;
}

export async function startRawUpstream(t: TestContext, script: (socket: Socket, head: string) => void): Promise<RawUpstream> {
  const sockets = new Set<Socket>();
  const upstream: RawUpstream = {
    url: '',
    requests: 0,
    byPath: new Map(),
    closeAll: () => sockets.forEach((s) => s.destroy()),
  };
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let head = '';
    const onData = (chunk: Buffer) => {
      head += chunk.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      socket.off('data', onData);
      upstream.requests++;
      const path = head.split(' ', 2)[1] ?? '';
      upstream.byPath.set(path, (upstream.byPath.get(path) ?? 0) + 1);
      script(socket, head);
    };
    socket.on('data', onData);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  upstream.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  t.after(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => server.close(resolve));
  });
  return upstream;
}
