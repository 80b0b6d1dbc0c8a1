/**
 * An informer (list + watch into a cache, client-node) that keeps itself
 * running: restarted with exponential backoff after an error, and by a
 * watchdog when the watch has been silent for too long.
 */
import { ListWatch, Watch, type KubeConfig, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from 'pino';

export interface Handlers<T> {
  upsert(obj: T, previous?: T): void;
  remove(obj: T): void;
  /** After every (re)list, so caches can be compared with the world. */
  synced(): void;
}

export interface ResilientInformer<T> {
  list(): readonly T[];
  readonly hasSynced: boolean;
  stop(): Promise<void>;
}

export function resilientInformer<T extends KubernetesObject>(
  kc: KubeConfig,
  path: string,
  list: () => Promise<KubernetesListObject<T>>,
  handlers: Handlers<T>,
  log: Logger,
  options: { labelSelector?: string; fieldSelector?: string; silenceMs?: number; /** How to watch (metadata-watch.ts for metadata only); a plain watch by default. */ watch?: Watch } = {},
): ResilientInformer<T> {
  const informer = new ListWatch<T>(path, options.watch ?? new Watch(kc), list, false, options.labelSelector, options.fieldSelector);
  let failures = 0;
  let lastActivity = Date.now();
  let stopped = false;
  let hasSynced = false;
  let restartTimer: NodeJS.Timeout | undefined;
  const touch = () => {
    lastActivity = Date.now();
  };
  informer.on('add', (obj) => {
    touch();
    handlers.upsert(obj);
  });
  informer.on('update', (obj) => {
    touch();
    handlers.upsert(obj);
  });
  informer.on('delete', (obj) => {
    touch();
    handlers.remove(obj);
  });
  informer.on('connect', touch);
  // start() resolves once the list is in the cache and the watch is open.
  const run = () =>
    informer.start().then(() => {
      touch();
      failures = 0;
      hasSynced = true;
      handlers.synced();
    });
  const restart = (why: string) => {
    if (stopped || restartTimer) return;
    const delay = Math.min(30_000, 500 * 2 ** failures++) * (0.5 + Math.random() / 2);
    log.warn({ path, why, delayMs: Math.round(delay) }, 'informer restarting');
    restartTimer = setTimeout(() => {
      restartTimer = undefined;
      void informer.stop().then(run).catch((err: unknown) => restart((err as Error).message));
    }, delay);
  };
  informer.on('error', (err) => restart((err as Error)?.message ?? String(err)));
  const watchdog = setInterval(() => {
    if (Date.now() - lastActivity > (options.silenceMs ?? 300_000)) restart('watch silent');
  }, 10_000);
  watchdog.unref();
  void run().catch((err: unknown) => restart((err as Error).message));
  return {
    list: () => informer.list(),
    get hasSynced() {
      return hasSynced;
    },
    async stop() {
      stopped = true;
      clearInterval(watchdog);
      clearTimeout(restartTimer);
      await informer.stop();
    },
  };
}
