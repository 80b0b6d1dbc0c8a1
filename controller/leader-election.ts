/**
 * Leader election on a coordination.k8s.io Lease, as client-go does it: the
 * holder renews the lease every renew period; another replica takes it over
 * once it has not been renewed for the lease duration. Updates carry the
 * resourceVersion, so two replicas can never both win. A leader that cannot
 * renew before its lease would expire steps down.
 */
import type { CoordinationV1Api, V1Lease } from '@kubernetes/client-node';
import type { Logger } from 'pino';

/**
 * A Lease's times are MicroTime (microsecond precision); client-node would send
 * a Date with milliseconds, which the API server refuses, but passes a string as is.
 */
const microTime = (date: Date) => date.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z') as unknown as Date;

export interface LeaderElectionOptions {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs?: number;
  renewMs?: number;
  onChange?: (leader: boolean) => void;
}

export class LeaderElector {
  private leader = false;
  private renewedAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly leaseDurationMs: number;

  constructor(
    private readonly api: CoordinationV1Api,
    private readonly options: LeaderElectionOptions,
    private readonly log: Logger,
  ) {
    this.leaseDurationMs = options.leaseDurationMs ?? 15_000;
  }

  isLeader(): boolean {
    if (this.leader && Date.now() - this.renewedAt > this.leaseDurationMs) this.set(false, 'could not renew the lease in time');
    return this.leader;
  }

  start(): void {
    const loop = async () => {
      await this.tryAcquireOrRenew().catch((err: unknown) => this.log.warn({ err: (err as Error).message }, 'leader election round failed'));
      this.isLeader();
      this.timer = setTimeout(loop, this.options.renewMs ?? 5000);
    };
    void loop();
  }

  /** Stops campaigning; a leader gives the lease up so another replica need not wait for it to expire. */
  async stop(): Promise<void> {
    clearTimeout(this.timer);
    if (!this.leader) return;
    this.set(false, 'stopping');
    const { namespace, name } = this.options;
    try {
      const lease = await this.api.readNamespacedLease({ name, namespace });
      if (lease.spec?.holderIdentity !== this.options.identity) return;
      await this.api.replaceNamespacedLease({ name, namespace, body: { ...lease, spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1 } } });
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'could not release the lease; it will expire');
    }
  }

  private set(leader: boolean, why: string): void {
    if (leader === this.leader) return;
    this.leader = leader;
    this.log.info({ identity: this.options.identity, leader, why }, leader ? 'became the leader' : 'no longer the leader');
    this.options.onChange?.(leader);
  }

  private async tryAcquireOrRenew(): Promise<void> {
    const { namespace, name, identity } = this.options;
    const now = microTime(new Date());
    const spec = { holderIdentity: identity, leaseDurationSeconds: Math.ceil(this.leaseDurationMs / 1000), renewTime: now };
    let lease: V1Lease;
    try {
      lease = await this.api.readNamespacedLease({ name, namespace });
    } catch (err) {
      if ((err as { code?: number }).code !== 404) throw err;
      await this.api.createNamespacedLease({ namespace, body: { metadata: { name, namespace }, spec: { ...spec, acquireTime: now, leaseTransitions: 0 } } });
      this.renewedAt = Date.now();
      return this.set(true, 'created the lease');
    }
    const holder = lease.spec?.holderIdentity;
    const renewed = lease.spec?.renewTime ? new Date(lease.spec.renewTime).getTime() : 0;
    const expired = Date.now() - renewed > (lease.spec?.leaseDurationSeconds ?? 15) * 1000;
    if (holder !== identity && holder && !expired) return this.set(false, `held by ${holder}`);
    const takeover = holder !== identity;
    try {
      await this.api.replaceNamespacedLease({
        name,
        namespace,
        body: {
          ...lease,
          spec: {
            ...lease.spec,
            ...spec,
            acquireTime: takeover ? now : lease.spec?.acquireTime,
            leaseTransitions: (lease.spec?.leaseTransitions ?? 0) + (takeover ? 1 : 0),
          },
        },
      });
    } catch (err) {
      if ((err as { code?: number }).code === 409) return this.set(false, 'another replica won the lease');
      throw err;
    }
    this.renewedAt = Date.now();
    this.set(true, takeover ? `took over from ${holder ?? 'nobody'}` : 'renewed');
  }
}
