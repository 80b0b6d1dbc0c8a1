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
 * Connections the kernel holds for a server until it accepts them (it caps this at
 * net.core.somaxconn), where Node's default is 511. A burst while the event loop is busy overflowed
 * 511: 2,000 streams opening at once at the sidecar (the kernel dropped handshakes, requests came
 * seconds late, and some met the headers timeout as a 408), or a fleet of sidecars reconnecting to a
 * controller replica.
 */
const BACKLOG = 4096;

/** Starts `server` at `at`, with a backlog of BACKLOG; resolves to its URL with the port it got (port 0 picks a free one). */
export function listen(server: Server, at: HostPort, scheme = 'http'): Promise<string> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: at.port, host: at.host, backlog: BACKLOG }, () => {
      server.off('error', reject);
      const { address, port } = server.address() as AddressInfo;
      resolve(`${scheme}://${address.includes(':') ? `[${address}]` : address}:${port}`);
    });
  });
}
