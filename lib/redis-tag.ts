/** A name as the part of a Redis key that says whose the key is. */
import { createHash } from 'node:crypto';

/** The longest a name may take in a key; a longer one is cut and a hash of the whole added. */
const MAX_TAG = 128;

/**
 * `name` as a Redis Cluster hash tag (`{…}`: one owner's keys share a slot). Characters outside a
 * Kubernetes name's are replaced and a long name is cut, with a hash of the whole so that two names
 * cut or replaced alike stay apart.
 */
export function redisTag(name: string): string {
  const clean = name.replace(/[^A-Za-z0-9._/-]/g, '_');
  if (clean.length <= MAX_TAG && clean === name) return `{${clean}}`;
  return `{${clean.slice(0, MAX_TAG)}~${createHash('sha256').update(name).digest('hex').slice(0, 12)}}`;
}
