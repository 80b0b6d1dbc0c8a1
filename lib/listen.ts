/** Where a server listens, as the CLI's flags give it, and a listen() that resolves to the server's URL. */
import type { Server } from 'node:net';
import type { AddressInfo } from 'node:net';

export interface HostPort {
  host: string;
  port: number;
}

/** Parses HOST:PORT (IPv6 hosts in brackets); undefined when it is not of that form. */
export function parseHostPort(text: string): HostPort | undefined {
  const match = /^(.*):([0-9]{1,5})$/.exec(text);
  if (!match || Number(match[2]) > 65535) return undefined;
  return { host: match[1]!.replace(/^\[|\]$/g, ''), port: Number(match[2]) };
}

/**
 * Starts `server` at `at`; resolves to its URL with the port it got (port 0 picks a free one).
 * `backlog`: connections the kernel holds until they are accepted (Node's default is 511; the
 * kernel caps it at net.core.somaxconn).
 */
export function listen(server: Server, at: HostPort, scheme = 'http', backlog?: number): Promise<string> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: at.port, host: at.host, backlog }, () => {
      server.off('error', reject);
      const { address, port } = server.address() as AddressInfo;
      resolve(`${scheme}://${address.includes(':') ? `[${address}]` : address}:${port}`);
    });
  });
}
