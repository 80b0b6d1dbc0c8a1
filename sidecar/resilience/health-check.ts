/**
 * An endpoint's active health check as a state machine: unknown until the
 * first probe answers (unless it starts from what an earlier check of the
 * same target had learnt), then healthy or unhealthy, changing only after
 * `healthyThreshold` or `unhealthyThreshold` results in a row say so. Never
 * more than one probe in flight: the next is timed from the end of the last,
 * and each is aborted after `timeoutMs`. `stop()` ends it for good.
 */
import type { Clock } from './clock.js';

export interface HealthSettings {
  intervalMs: number;
  timeoutMs: number;
  healthyThreshold: number;
  unhealthyThreshold: number;
}

export type HealthStatus = 'unknown' | 'healthy' | 'unhealthy';

export class HealthCheck {
  private current: HealthStatus;
  /** Results in a row that disagree with the current status. */
  private disagreeing = 0;
  private timer: unknown;
  private stopped = false;

  constructor(
    private readonly settings: HealthSettings,
    private readonly clock: Clock,
    /** One probe: resolves true for a healthy answer; must give up when the signal aborts. */
    private readonly probe: (signal: AbortSignal) => Promise<boolean>,
    private readonly onChange: (status: HealthStatus) => void = () => {},
    /** The status an earlier check of the same target had reached (a config change replaced it). */
    carried: HealthStatus = 'unknown',
  ) {
    this.current = carried;
  }

  get status(): HealthStatus {
    return this.current;
  }

  start(): void {
    void this.tick();
  }

  stop(): void {
    this.stopped = true;
    this.clock.clearTimer(this.timer);
  }

  private async tick(): Promise<void> {
    const controller = new AbortController();
    const timeout = this.clock.setTimer(() => controller.abort(), this.settings.timeoutMs);
    let healthy: boolean;
    try {
      healthy = await this.probe(controller.signal);
    } catch {
      healthy = false;
    } finally {
      this.clock.clearTimer(timeout);
    }
    if (this.stopped) return;
    this.record(healthy);
    this.timer = this.clock.setTimer(() => void this.tick(), this.settings.intervalMs);
  }

  private record(healthy: boolean): void {
    const seen: HealthStatus = healthy ? 'healthy' : 'unhealthy';
    if (seen === this.current) {
      this.disagreeing = 0;
      return;
    }
    const needed = this.current === 'unknown' ? 1 : healthy ? this.settings.healthyThreshold : this.settings.unhealthyThreshold;
    if (++this.disagreeing < needed) return;
    this.disagreeing = 0;
    this.current = seen;
    this.onChange(seen);
  }
}
