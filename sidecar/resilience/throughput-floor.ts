/**
 * A floor under a stream's throughput: bytes are counted as they are sent,
 * and each time a whole window has passed, the window's rate is compared
 * with the floor. A stream below it counts as stalled, though it still
 * trickles (a stream that sends nothing at all is the stream-idle timeout's).
 */
export class ThroughputFloor {
  private windowStart: number;
  private bytes = 0;

  constructor(
    private readonly bytesPerSecond: number,
    private readonly windowMs: number,
    start: number,
  ) {
    this.windowStart = start;
  }

  /** Counts `bytes` sent at `now`; true when a window that just closed fell below the floor. */
  record(bytes: number, now: number): boolean {
    this.bytes += bytes;
    const elapsed = now - this.windowStart;
    if (elapsed < this.windowMs) return false;
    const below = this.bytes * 1000 < this.bytesPerSecond * elapsed;
    this.windowStart = now;
    this.bytes = 0;
    return below;
  }
}
