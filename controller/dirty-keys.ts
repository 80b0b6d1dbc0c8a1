/**
 * The reconciler's coalescing loop: keys marked dirty within `coalesceMs`
 * of each other are worked on in one pass, one pass at a time, each key
 * once; a key whose work fails is marked again a second later.
 */
import type { Logger } from 'pino';

export class DirtyKeys {
  private readonly dirty = new Set<string>();
  private flushing: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly work: (key: string) => Promise<void>,
    private readonly log: Logger,
    private readonly coalesceMs = 250,
  ) {}

  mark(key: string): void {
    this.dirty.add(key);
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, this.coalesceMs);
  }

  /** Works on every dirty key; one pass at a time. */
  flush(): Promise<void> {
    this.flushing ??= (async () => {
      const keys = [...this.dirty];
      this.dirty.clear();
      for (const key of keys) {
        try {
          await this.work(key);
        } catch (err) {
          this.log.warn({ policy: key, err: (err as Error).message }, 'reconcile failed; retrying');
          setTimeout(() => this.mark(key), 1000).unref();
        }
      }
    })().finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  close(): void {
    clearTimeout(this.timer);
  }
}
