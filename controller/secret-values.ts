/**
 * The values of the Secret keys policies name (auth.secretRef,
 * cache.redis.secretRef), for the config streams of the pods that use them.
 * The controller may only `get` Secrets by name (never list or watch them),
 * so a Secret a connected pod needs is read again every `pollMs`: a rotated
 * key reaches the pod's sidecar within about that, with no restart, and a
 * Secret created after its pods is picked up the same way. A Secret or key
 * that does not exist is left out (the sidecar then refuses to call that
 * upstream rather than send no key). Values are never logged.
 */
import { createHash } from 'node:crypto';
import type { CoreV1Api } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { credentialKey } from '../api/index.js';

export interface SecretRef {
  name: string;
  key: string;
}

/** A Secret's data as read: key → value; null when the Secret does not exist. */
type SecretData = Record<string, string> | null;

export class SecretValues {
  /** By `namespace/name`: the Secret as last read, and a digest of it to see a change. */
  private readonly known = new Map<string, { data: SecretData; digest: string }>();
  private readonly reading = new Map<string, Promise<void>>();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly read: (namespace: string, name: string) => Promise<SecretData>,
    /** A Secret of `namespace` changed (or was read for the first time): its pods' snapshots are due again. */
    private readonly changed: (namespace: string) => void,
    /** The Secrets (`namespace/name`) that connected pods need now. */
    private readonly wanted: () => Iterable<string>,
    private readonly log: Logger,
    pollMs = 5000,
  ) {
    this.timer = setInterval(() => this.poll(), pollMs);
    this.timer.unref();
  }

  /** The values of `refs` in `namespace` known now; a Secret not read yet is read, and its pods are sent it once it is. */
  valuesFor(namespace: string, refs: readonly SecretRef[]): Record<string, string> {
    const values: Record<string, string> = {};
    for (const ref of refs) {
      const secret = this.known.get(`${namespace}/${ref.name}`);
      if (!secret) void this.fetch(namespace, ref.name);
      const value = secret?.data?.[ref.key];
      if (value !== undefined && value !== '') values[credentialKey(ref)] = value;
    }
    return values;
  }

  /** Reads every wanted Secret again. */
  poll(): Promise<void[]> {
    return Promise.all([...new Set(this.wanted())].map((id) => this.fetch(...(id.split('/', 2) as [string, string]))));
  }

  close(): void {
    clearInterval(this.timer);
  }

  private fetch(namespace: string, name: string): Promise<void> {
    const id = `${namespace}/${name}`;
    let pending = this.reading.get(id);
    if (!pending) {
      pending = this.read(namespace, name)
        .then((data) => {
          const digest = createHash('sha256').update(JSON.stringify(data)).digest('hex');
          const before = this.known.get(id);
          this.known.set(id, { data, digest });
          if (before?.digest !== digest) this.changed(namespace);
        })
        .catch((err: unknown) => this.log.warn({ secret: id, err: (err as Error).message }, 'could not read a Secret a policy names; its last value stays'))
        .finally(() => this.reading.delete(id));
      this.reading.set(id, pending);
    }
    return pending;
  }
}

/** Reads a Secret's data (values decoded, trimmed as a key file's would be); null when it does not exist. */
export function secretReader(core: CoreV1Api): (namespace: string, name: string) => Promise<SecretData> {
  return async (namespace, name) => {
    try {
      const secret = await core.readNamespacedSecret({ name, namespace });
      return Object.fromEntries(Object.entries(secret.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8').trim()]));
    } catch (err) {
      if ((err as { code?: number }).code === 404) return null;
      throw err;
    }
  };
}

/** The Secret keys a policy's spec names. */
export function secretRefsOf(spec: { upstreams?: readonly { auth?: { secretRef?: SecretRef } }[]; cache?: { redis?: { secretRef?: SecretRef } } }): SecretRef[] {
  const refs: SecretRef[] = [];
  for (const upstream of spec.upstreams ?? []) if (upstream.auth?.secretRef) refs.push(upstream.auth.secretRef);
  if (spec.cache?.redis?.secretRef) refs.push(spec.cache.redis.secretRef);
  return refs;
}
