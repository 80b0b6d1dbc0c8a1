/**
 * The Secret keys policies name (auth.secretRef, cache.redis.secretRef,
 * sharedState.redis.secretRef), as
 * the config streams of the pods that use them carry them. The controller may
 * only `get` Secrets by name (never list or watch them), so a Secret a
 * connected pod needs is read again every `pollMs`: a rotated key reaches the
 * pod's sidecar within about that, with no restart, and a Secret created after
 * its pods is picked up the same way. Values are never logged.
 *
 * A Secret's values are used only with its owner's consent: it must carry the
 * label `breakwater.dev/credential: "true"`. Anyone who may write a policy
 * may name any Secret of its namespace, and point the upstream at a URL of
 * their own; without the label the controller would be their deputy, reading
 * for them what they may not. Tokens for the cluster itself (service-account
 * and bootstrap tokens) are never sent, labelled or not.
 *
 * What the controller knows of each key is one of three things (api/protocol.ts):
 * its usable value; that it has none, and why (the Secret or key does not
 * exist, the Secret is not labelled, the value is no credential:
 * api/credential-value.ts); or nothing, while the Secret has not been read
 * successfully (the sidecar then keeps the value it had). A Secret first
 * wanted is read at once, and pods' snapshots wait for that first read, for at
 * most `firstReadWaitMs`, so a policy switched to an existing Secret, or a
 * restarted controller, never sends a snapshot that lacks a key only because
 * it was not read yet. What no connected pod wants any more is forgotten.
 */
import { createHash } from 'node:crypto';
import type { CoreV1Api, V1Secret } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { credentialKey, credentialValue, SecretReason, type CredentialValue, type SnapshotCredentials } from '../api/index.js';

/** The label by which a Secret's owner lets Breakwater send its values to the sidecars of the policies that name it. */
export const CREDENTIAL_LABEL = 'breakwater.dev/credential';

/** Secret types whose values are never sent: they authenticate to the cluster itself. */
const NEVER_SENT_TYPES: ReadonlySet<string> = new Set(['kubernetes.io/service-account-token', 'bootstrap.kubernetes.io/token']);

export interface SecretRef {
  name: string;
  key: string;
}

/**
 * A Secret as the controller reads it: null when it does not exist; `refused` (why) when Breakwater may
 * not use it; otherwise each key's credential (a usable value, or why it is not one), by key.
 */
export type SecretRead = null | { refused: string } | { keys: ReadonlyMap<string, CredentialValue> };

/** Why a Secret key gives no credential: a status reason, and what follows "Secret <name>, key <key>" in a message. */
export interface CredentialProblem {
  reason: SecretReason;
  says: string;
}

/** A Secret key's usable value, or why it has none. */
export function credentialIn(read: SecretRead, key: string): { value: string; problem?: undefined } | { value?: undefined; problem: CredentialProblem } {
  if (read === null) return { problem: { reason: SecretReason.SecretNotFound, says: 'does not exist' } };
  if ('refused' in read) return { problem: { reason: SecretReason.SecretNotAllowed, says: `is not usable: ${read.refused}` } };
  const found = read.keys.get(key);
  if (!found) return { problem: { reason: SecretReason.SecretNotFound, says: 'does not exist' } };
  return found.problem === undefined ? { value: found.value } : { problem: { reason: SecretReason.SecretValueUnusable, says: `is not usable: ${found.problem}` } };
}

/** What a Secret as the API server returns it is to Breakwater (see SecretRead). */
export function secretRead(secret: V1Secret): SecretRead {
  const name = secret.metadata?.name;
  if (secret.type && NEVER_SENT_TYPES.has(secret.type)) return { refused: `Secret ${name} is of type ${secret.type}, a token for the cluster itself, which Breakwater never sends` };
  const labels = secret.metadata?.labels ?? {};
  if (!Object.hasOwn(labels, CREDENTIAL_LABEL) || labels[CREDENTIAL_LABEL] !== 'true') {
    return { refused: `Secret ${name} is not labelled ${CREDENTIAL_LABEL}=true, so Breakwater may not send its values (its owner consents with: kubectl label secret ${name} ${CREDENTIAL_LABEL}=true)` };
  }
  return { keys: new Map(Object.entries(secret.data ?? {}).map(([key, base64]) => [key, credentialValue(Buffer.from(base64, 'base64').toString('utf8'))])) };
}

/** Reads a Secret (see secretRead); null when it does not exist. Other failures (403, 429, 5xx) are thrown. */
export function secretReader(core: CoreV1Api): (namespace: string, name: string) => Promise<SecretRead> {
  return async (namespace, name) => {
    try {
      return secretRead(await core.readNamespacedSecret({ name, namespace }));
    } catch (err) {
      if ((err as { code?: number }).code === 404) return null;
      throw err;
    }
  };
}

/** A policy's Secret keys for its pods' snapshots, and whether the snapshots should wait for a first read under way. */
export interface PolicyCredentials {
  fields: Required<Pick<SnapshotCredentials, 'credentials'>> & SnapshotCredentials;
  waiting: boolean;
}

export interface SecretValuesOptions {
  pollMs?: number;
  /** How long pods' snapshots wait for the first read of a Secret they need. */
  firstReadWaitMs?: number;
}

export class SecretValues {
  /** By `namespace/name`: the Secret as last read, and a digest of it to see a change. */
  private readonly known = new Map<string, { read: SecretRead; digest: string }>();
  /** Wanted Secrets never read successfully yet, and whether pods' snapshots still wait for them (until the first read ends, or its deadline). */
  private readonly unread = new Map<string, { waiting: boolean; deadline: NodeJS.Timeout }>();
  private readonly reading = new Map<string, Promise<void>>();
  private readonly timer: NodeJS.Timeout;
  private readonly firstReadWaitMs: number;

  constructor(
    private readonly read: (namespace: string, name: string) => Promise<SecretRead>,
    /** What is known of a Secret of `namespace` changed (or a first read ended, or its wait did): its pods' snapshots are due again. */
    private readonly changed: (namespace: string) => void,
    /** The Secrets (`namespace/name`) that connected pods need now. */
    private readonly wanted: () => Iterable<string>,
    private readonly log: Logger,
    options: SecretValuesOptions = {},
  ) {
    this.firstReadWaitMs = options.firstReadWaitMs ?? 2000;
    this.timer = setInterval(() => void this.poll(), options.pollMs ?? 5000);
    this.timer.unref();
  }

  /** What is known now of `refs` in `namespace`; a Secret not known yet is read at once (and its pods are sent it once it is). */
  credentialsFor(namespace: string, refs: readonly SecretRef[]): PolicyCredentials {
    const values = new Map<string, string>();
    const problems = new Map<string, string>();
    const unread = new Set<string>();
    let waiting = false;
    for (const ref of refs) {
      const id = `${namespace}/${ref.name}`;
      const key = credentialKey(ref);
      const secret = this.known.get(id);
      if (secret) {
        const found = credentialIn(secret.read, ref.key);
        if (found.problem === undefined) values.set(key, found.value);
        else problems.set(key, found.problem.says);
        continue;
      }
      // A Secret whose first read failed is not read again here (the poll does): pods are not held up again.
      if (!this.unread.has(id)) void this.fetch(namespace, ref.name);
      unread.add(key);
      waiting ||= this.unread.get(id)?.waiting ?? false;
    }
    return {
      fields: {
        credentials: Object.fromEntries(values),
        ...(problems.size > 0 && { credentialProblems: Object.fromEntries(problems) }),
        ...(unread.size > 0 && { unreadCredentials: [...unread] }),
      },
      waiting,
    };
  }

  /** Forgets the Secrets no connected pod wants any more, and reads every wanted one again. */
  poll(): Promise<void[]> {
    const wanted = new Set(this.wanted());
    for (const id of this.known.keys()) if (!wanted.has(id)) this.known.delete(id);
    for (const [id, first] of this.unread) {
      if (wanted.has(id)) continue;
      clearTimeout(first.deadline);
      this.unread.delete(id);
    }
    return Promise.all([...wanted].map((id) => this.fetch(...(id.split('/', 2) as [string, string]))));
  }

  close(): void {
    clearInterval(this.timer);
    for (const first of this.unread.values()) clearTimeout(first.deadline);
  }

  private fetch(namespace: string, name: string): Promise<void> {
    const id = `${namespace}/${name}`;
    let pending = this.reading.get(id);
    if (pending) return pending;
    if (!this.known.has(id) && !this.unread.has(id)) {
      const first = { waiting: true, deadline: setTimeout(() => this.stopWaiting(id, namespace), this.firstReadWaitMs) };
      first.deadline.unref();
      this.unread.set(id, first);
    }
    pending = this.read(namespace, name)
      .then((read) => {
        const digest = createHash('sha256').update(JSON.stringify(read && 'keys' in read ? [...read.keys] : read)).digest('hex');
        const before = this.known.get(id);
        clearTimeout(this.unread.get(id)?.deadline);
        this.unread.delete(id);
        this.known.set(id, { read, digest });
        if (before?.digest !== digest) this.changed(namespace);
      })
      .catch((err: unknown) => {
        this.log.warn({ secret: id, err: (err as Error).message }, 'could not read a Secret a policy names; sidecars keep the value they have');
        this.stopWaiting(id, namespace);
      })
      .finally(() => this.reading.delete(id));
    this.reading.set(id, pending);
    return pending;
  }

  /** Pods waiting for the first read of `id` get their snapshots now, with its keys unread. */
  private stopWaiting(id: string, namespace: string): void {
    const first = this.unread.get(id);
    if (!first?.waiting) return;
    first.waiting = false;
    clearTimeout(first.deadline);
    this.changed(namespace);
  }
}

/** A Secret key a policy names, and what names it ("upstream openai", "cache.redis"). */
export interface NamedSecretRef extends SecretRef {
  usedBy: string;
}

/** The Secret keys a policy's spec names. */
export function secretRefsOf(spec: { upstreams?: readonly { name: string; auth?: { secretRef?: SecretRef } }[]; cache?: { redis?: { secretRef?: SecretRef } }; sharedState?: { redis?: { secretRef?: SecretRef } } }): NamedSecretRef[] {
  const refs: NamedSecretRef[] = [];
  for (const upstream of spec.upstreams ?? []) if (upstream.auth?.secretRef) refs.push({ ...upstream.auth.secretRef, usedBy: `upstream ${upstream.name}` });
  if (spec.cache?.redis?.secretRef) refs.push({ ...spec.cache.redis.secretRef, usedBy: 'cache.redis' });
  if (spec.sharedState?.redis?.secretRef) refs.push({ ...spec.sharedState.redis.secretRef, usedBy: 'sharedState.redis' });
  return refs;
}
