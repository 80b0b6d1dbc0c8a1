/**
 * An upstream that misbehaves at the byte level: a raw TCP server on
 * 127.0.0.1 that reads each request's head and then runs a script on the
 * socket. It counts connections, and closes them all when the test ends.
 */
import { createServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import type { TestContext } from 'node:test';

export interface RawUpstream {
  url: string;
  /** Requests whose head arrived. */
  requests: number;
}

export async function startRawUpstream(t: TestContext, script: (socket: Socket) => void): Promise<RawUpstream> {
  const sockets = new Set<Socket>();
  const upstream = { url: '', requests: 0 };
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
      script(socket);
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
