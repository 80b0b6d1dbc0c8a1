/**
 * The config in force and the live objects built from it. A new config is
 * applied whole: upstreams whose settings are unchanged keep their live
 * objects; the others get new ones, and the replaced ones close once their
 * in-flight requests finish.
 */
import type { BreakerCounts } from '../api/index.js';
import type { RuntimeConfig } from './config/index.js';
import type { Metrics } from './metrics.js';
import { type Clock, DegradationMonitor } from './resilience/index.js';
import { ResponseCache } from './proxy/response-cache.js';
import { fingerprint, UpstreamState, type BreakerTransition } from './proxy/upstream-state.js';

export class SidecarState {
  config: RuntimeConfig | undefined;
  /** Answers kept for the cache tier; replaced (emptied) only when the cache settings change. */
  cache = new ResponseCache({ ttlMs: 0, maxEntries: 0, maxBytes: 0, serveFresh: false });
  /** The whole-sidecar mode; replaced (its window emptied) only when its settings change. */
  degradation: DegradationMonitor;
  private degradationSettings = '';
  private upstreams = new Map<string, UpstreamState>();

  constructor(
    private readonly clock: Clock,
    private readonly metrics: Metrics,
    private readonly onTransition: (event: BreakerTransition) => void,
    private readonly onModeChange: (from: string, to: string) => void = () => {},
    private readonly onRedisError: (err: Error) => void = () => {},
  ) {
    this.degradation = new DegradationMonitor({ windowMs: 60_000, degradedErrorRate: 0, degradedQueueDepth: 0, emergencyErrorRate: 0 }, clock);
  }

  /** Requests waiting in every upstream's bulkhead queue. */
  queued(): number {
    let n = 0;
    for (const u of this.upstreams.values()) n += u.bulkhead.waiting;
    return n;
  }

  upstream(name: string): UpstreamState | undefined {
    return this.upstreams.get(name);
  }

  live(): Iterable<UpstreamState> {
    return this.upstreams.values();
  }

  apply(config: RuntimeConfig): void {
    const classes = config.priorities.classes;
    const next = new Map<string, UpstreamState>();
    for (const [name, upstream] of config.upstreams) {
      const print = fingerprint(upstream, classes);
      const current = this.upstreams.get(name);
      next.set(name, current?.fingerprint === print ? current : new UpstreamState(upstream, print, classes, this.clock, this.metrics, this.onTransition));
    }
    for (const [name, state] of this.upstreams) if (next.get(name) !== state) state.close();
    this.upstreams = next;
    if (JSON.stringify(this.cache.config) !== JSON.stringify(config.cache)) {
      this.cache.close();
      this.cache = new ResponseCache(config.cache, this.onRedisError);
    }
    const degradation = JSON.stringify(config.degradation.settings);
    if (degradation !== this.degradationSettings) {
      this.degradation = new DegradationMonitor(config.degradation.settings, this.clock, this.onModeChange);
      this.degradationSettings = degradation;
    }
    this.config = config;
  }

  /** Breaker states per upstream, as reported to the controller. */
  breakerCounts(): Record<string, BreakerCounts> {
    const out: Record<string, BreakerCounts> = {};
    for (const [name, upstream] of this.upstreams) {
      const counts = { closed: 0, halfOpen: 0, open: 0 };
      for (const [, breaker] of upstream.breakerEntries()) {
        const state = breaker.stateName;
        if (state === 'open') counts.open++;
        else if (state === 'half-open') counts.halfOpen++;
        else counts.closed++;
      }
      out[name] = counts;
    }
    return out;
  }

  close(): void {
    this.cache.close();
    for (const state of this.upstreams.values()) state.close();
  }
}
