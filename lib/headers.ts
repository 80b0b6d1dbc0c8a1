/** Header helpers shared by every HTTP hop. */
import type { IncomingHttpHeaders } from 'node:http';

/** The first value of a header that may be repeated. */
export function firstHeader(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/**
 * Headers about one connection and its framing: hop-by-hop (RFC 9110 §7.6.1)
 * plus content-length, which each hop sets for the body it actually sends.
 * A proxy forwards none of them, either way.
 */
export const CONNECTION_HEADERS: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'content-length',
]);

/** Longest header value the sidecar writes from a value it did not choose itself. */
const MAX_ECHOED_VALUE = 256;

/**
 * True when `value` may be written as a header value as it is: Latin-1
 * without control characters (no CR, LF or NUL), and short. Values from apps
 * or upstreams are checked with this before they are echoed in a header.
 */
export function isSafeHeaderValue(value: string): boolean {
  return value.length <= MAX_ECHOED_VALUE && /^[\t\x20-\x7e\x80-\xff]*$/.test(value);
}
