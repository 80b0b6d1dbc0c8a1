/**
 * A controller that has not managed to read a Secret yet (it just started, or
 * the API server refuses or fails its reads) lists the Secret's keys as unread
 * (api/protocol.ts): it does not know them, which is not the same as knowing
 * they are gone. The sidecar then keeps the value it had for each such key, in
 * the snapshot it puts in force and in the copy it keeps on disk, so a
 * controller that cannot read Secrets never takes a working key away. Only a
 * controller that knows (a value, or why there is none) changes a key.
 */
import type { UncheckedSnapshot } from '../../api/index.js';

/**
 * `next`, with each of its unread keys given the value `previous` (the snapshot in force) had for it;
 * keys `previous` had no value for stay unread.
 */
export function keepUnreadCredentials(previous: UncheckedSnapshot | undefined, next: UncheckedSnapshot): UncheckedSnapshot {
  const unread = next.unreadCredentials;
  const had = previous?.credentials;
  if (!unread?.length || !had || !next.credentials) return next;
  const told = (key: string) => Object.hasOwn(next.credentials!, key) || (next.credentialProblems !== undefined && Object.hasOwn(next.credentialProblems, key));
  const kept = unread.filter((key) => Object.hasOwn(had, key) && !told(key));
  if (kept.length === 0) return next;
  const { unreadCredentials: _, ...rest } = next;
  const stillUnread = unread.filter((key) => !kept.includes(key));
  return {
    ...rest,
    // From entries, so that any key is an own key, `__proto__` too.
    credentials: Object.fromEntries([...Object.entries(next.credentials), ...kept.map((key) => [key, had[key]!] as const)]),
    ...(stillUnread.length > 0 && { unreadCredentials: stillUnread }),
  };
}
