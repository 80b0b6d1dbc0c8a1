/**
 * A test's own HTTP server on 127.0.0.1: listens on a free port, and when the
 * test ends clears the timers its answers scheduled, destroys its open
 * sockets and closes. Returns its base URL.
 */
import type { Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { TestContext } from 'node:test';

export async function listenForTest(t: TestContext, server: Server, timers: Set<NodeJS.Timeout>): Promise<string> {
  const sockets = new Set<Socket>();
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(async () => {
    timers.forEach(clearTimeout);
    sockets.forEach((s) => s.destroy());
    await new Promise((resolve) => server.close(resolve));
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}
