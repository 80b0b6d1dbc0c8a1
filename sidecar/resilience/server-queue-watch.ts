/**
 * An endpoint's self-hosted model server, watched for requests waiting in
 * its own queue (read from its metrics on the health check's schedule).
 * Requests waiting there mean the server is full whatever the sidecar's
 * limit says: `onQueue` hears each such reading, with how long it holds
 * (the endpoint's adaptive limit holds its growth and is cut gently:
 * AdaptiveLimit.serverQueue, its rule 8). Never more than one read in
 * flight: the next is timed from the end of the last, each is aborted after
 * `timeoutMs`, and `stop()` aborts the one in flight and ends it for good.
 */
import type { Clock } from './clock.js';

export interface ServerQueueSettings {
  intervalMs: number;
  timeoutMs: number;
}

export class ServerQueueWatch {
  private last: number | undefined;
  private timer: unknown;
  private reading: AbortController | undefined;
  private stopped = false;

  constructor(
    private readonly settings: ServerQueueSettings,
    private readonly clock: Clock,
    /** One read: the requests waiting, or undefined when the answer says nothing of them; must give up when the signal aborts. */
    private readonly read: (signal: AbortSignal) => Promise<number | undefined>,
    /** Requests wait in the server's queue: what the last reading said, and for how long it holds. */
    private readonly onQueue: (waiting: number, holdMs: number) => void,
  ) {}

  /** What the last read said: the requests waiting, or undefined (none yet, or the last one failed). */
  get waiting(): number | undefined {
    return this.last;
  }

  /**
   * How long a reading holds: until the next one is due at the latest (an interval after this one, plus its
   * timeout), and at least two intervals, so that a reading late by a little does not let the limit grow in the
   * gap. A server that stops answering is not taken as still full past that.
   */
  get holdMs(): number {
    const { intervalMs, timeoutMs } = this.settings;
    return Math.max(2 * intervalMs, intervalMs + timeoutMs);
  }

  start(): void {
    void this.tick();
  }

  stop(): void {
    this.stopped = true;
    this.clock.clearTimer(this.timer);
    this.reading?.abort();
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    const controller = (this.reading = new AbortController());
    const timeout = this.clock.setTimer(() => controller.abort(), this.settings.timeoutMs);
    let waiting: number | undefined;
    try {
      waiting = await this.read(controller.signal);
    } catch {
      waiting = undefined;
    } finally {
      this.clock.clearTimer(timeout);
      this.reading = undefined;
    }
    if (this.stopped) return;
    this.last = waiting;
    this.timer = this.clock.setTimer(() => void this.tick(), this.settings.intervalMs);
    if (waiting !== undefined && waiting > 0) this.onQueue(waiting, this.holdMs);
  }
}
