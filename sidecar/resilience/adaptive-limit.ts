/**
 * An adaptive concurrency limit for one endpoint of an upstream: how many
 * attempts it is sent at once, learnt from what an LLM provider says rather
 * than from latency (which, for an LLM, measures the answer's length). It is
 * an AIMD loop with a slow start; the request path reports each attempt's
 * outcome, the limit moves, and `onChange` tells the bulkhead.
 *
 * The rules, in the order they are checked:
 * 1. Bounds. The limit stays within [min, max] (both whole numbers).
 * 2. Growth is earned: a good first answer (a stream's first content event, a
 *    plain 2xx) grows the limit only while it is in use (at least half of it
 *    in flight at the endpoint), and only once any wait the provider asked for
 *    (Retry-After, a rate-limit quota close to spent, a server queue) is over.
 * 3. Slow start. Until the first overload, each good answer adds the limit
 *    over the attempts in flight (one, when the limit is full; more when
 *    slots reserved for an idle priority class keep it from filling), twice
 *    that for a stream, whose slot its first token does not free: the
 *    limit doubles per round, so a burst of streams opens it in a few
 *    first-token times (32 to 500 in four), not a few stream lengths. It starts again when the
 *    provider serves clearly more attempts at once than it held when it
 *    last refused (its edge, by 5% and at least one more: the endpoint's
 *    count runs a little ahead of the provider's): it grew (10 → 200).
 * 4. Probing. After an overload, a round (`limit` good answers) adds `step`,
 *    which starts at one and doubles each round (at most doubling the limit),
 *    up to the ceiling: the limit at which the provider held what it held
 *    when it last refused. There the limit stays for 3 rounds and at least
 *    60 good answers, then probes past it the same way, +1, +2, +4…: a
 *    provider that keeps its capacity refuses one attempt per probe, under
 *    2% of attempts even at a limit of 10, and one that grew is found within
 *    about 7 s at 10 answers a second.
 * 5. Cut. An overload (429, 503, 529) sets the ceiling to `held`, the limit
 *    at which the endpoint would have had only the attempts the provider
 *    held when it refused (the caller counts it: attempts waiting out a
 *    Retry-After, the refused one, slots reserved for idle classes are not
 *    at the provider), the provider's own measure of its capacity. A probe
 *    past the ceiling (or a slow start past it) that is refused, or a
 *    refusal while the provider holds about as many as at its last one
 *    (within the same 5%), found the edge: the limit goes back to `held`. Any other overload means the
 *    provider shrank (or others took it): the limit goes to 90% of `held`,
 *    and a drop from 200 to 10 is followed within one stream length. Step
 *    and round start again, and growth waits for its Retry-After (10 s at
 *    most). A refusal while the endpoint used under a quarter of its limit
 *    (one 429 at idle: a rate quota, a provider others fill; counted in the
 *    slots its requests hold, waits for a Retry-After included), or with
 *    none of its other requests at the provider, says little
 *    of its concurrency: the limit goes to 90% of itself, without a hold,
 *    and stays in its phase. A cut is
 *    of whole numbers: the fraction slow start grew by is dropped, never
 *    scaled into the cut.
 * 6. One cut per overload. An overload of an attempt sent before the last cut
 *    (or in its millisecond) was already answered by it: a burst of 429s from one overload is one cut.
 *    So is one whose `held` is past the limit: the provider still holds streams from before the cut.
 * 7. Slow first tokens. A stream's time to first token, smoothed over the
 *    last ~50 answers, rising past twice its level over the last ~200 (and
 *    1 s above it) is a provider queueing inside (a self-hosted vLLM's KV
 *    cache full): a gentle cut to 95%, once per rule 6, and no growth from
 *    that answer. Both are means, not a least value: first tokens that
 *    merely vary (prompts of every length, a reasoning model's long tail)
 *    keep their mean far above their least, and that is no queue.
 * 8. A quota close to spent (x-ratelimit-remaining-*, anthropic-ratelimit-*
 *    under 5% of its limit) or a self-hosted server that reports requests
 *    waiting holds growth for a while; waiting requests also cut gently.
 */
import type { Clock } from './clock.js';

export interface AdaptiveLimitSettings {
  min: number;
  max: number;
  initial: number;
}

export type LimitChange = 'slow-start' | 'probe' | 'overload' | 'slow-first-token' | 'server-queue';

/** Share of what the provider held that a cut keeps (rule 5), and of the limit a gentle cut keeps (rules 7, 8). */
export const CUT_TO = 0.9;
export const GENTLE_CUT_TO = 0.95;
/** Rule 7: smoothing of the time to first token, recent and long-run, and answers read before it judges (the long-run's memory). */
const TTFT_RECENT = 0.02;
const TTFT_LONG_RUN = 0.005;
const TTFT_SLACK_MS = 1000;
const TTFT_WARM_SAMPLES = 1 / TTFT_LONG_RUN;
/** Rule 5: a refusal while the endpoint used less than 1/UNDER_USED of its limit cuts gently. */
const UNDER_USED = 4;
/** Rules 5, 8: the longest a Retry-After or a server's queue holds growth. */
const MAX_HOLD_MS = 10_000;
/** Rule 4: rounds, and good answers at least, spent at the ceiling before probing past it. */
const PLATEAU_ROUNDS = 3;
const PLATEAU_ANSWERS = 60;

export class AdaptiveLimit {
  private value: number;
  private slowStart = true;
  private step = 1;
  private round = 0;
  /** The limit at which the provider held what it held at the last cut (rule 4's ceiling), and the good answers since at it (Infinity once it probes past). */
  private ceiling = Infinity;
  private plateau = 0;
  /** Attempts the provider held when it last refused (rule 3: serving more means it grew). */
  private edge = Infinity;
  private holdUntil = -Infinity;
  private lastCutAt = -Infinity;
  /** Rule 7: the time to first token smoothed recently and over the long run, and the answers read. */
  private ttft: { recent: number; longRun: number; samples: number } | undefined;

  constructor(
    readonly settings: AdaptiveLimitSettings,
    private readonly clock: Clock,
    private readonly onChange: (limit: number, why: LimitChange) => void = () => {},
    /** The limit of the same endpoint under the config this one replaces: what it learnt goes on (within these bounds). */
    carried?: AdaptiveLimit,
  ) {
    this.value = clamp(settings.initial, settings);
    if (carried) {
      this.value = clamp(carried.value, settings);
      [this.slowStart, this.step, this.round, this.ceiling, this.plateau] = [carried.slowStart, carried.step, carried.round, carried.ceiling, carried.plateau];
      [this.edge, this.holdUntil, this.lastCutAt] = [carried.edge, carried.holdUntil, carried.lastCutAt];
      this.ttft = carried.ttft && { ...carried.ttft };
    }
  }

  /** The limit now: a whole number within the bounds. */
  get limit(): number {
    return Math.floor(this.value);
  }

  /** Where the limit is: still in its slow start, or probing after an overload. */
  get phase(): 'slow-start' | 'probing' {
    return this.slowStart ? 'slow-start' : 'probing';
  }

  /**
   * A good first answer from an attempt sent at `sentAt`, while `inFlight` attempts are at the endpoint; for a stream,
   * `ttftMs` is its time to first content event (rule 7; plain answers have none worth reading).
   */
  served(sentAt: number, inFlight: number, ttftMs?: number): void {
    if (ttftMs !== undefined && this.slowFirstToken(ttftMs)) return this.gentleCut(sentAt, 'slow-first-token');
    if (this.clock.now() < this.holdUntil || inFlight * 2 < this.limit) return;
    if (inFlight > this.edge + slack(this.edge)) this.grew();
    // A plain answer frees its slot, a stream's first token does not: to double per round, a stream adds two.
    if (this.slowStart) return this.set(this.value + Math.min(this.limit, (ttftMs === undefined ? 1 : 2) * Math.min(2, this.limit / Math.max(1, inFlight))), 'slow-start');
    if (this.value >= this.ceiling && this.plateau !== Infinity) {
      if (++this.plateau < Math.max(PLATEAU_ROUNDS * this.limit, PLATEAU_ANSWERS)) return;
      this.plateau = Infinity;
    }
    if (++this.round < this.limit) return;
    this.round = 0;
    const step = this.step;
    this.step = Math.min(this.step * 2, this.limit);
    const below = this.value < this.ceiling;
    this.set(below ? Math.min(this.ceiling, this.value + step) : this.value + step, 'probe');
    if (below && this.value >= this.ceiling) this.step = 1;
  }

  /** The ceiling a cut set, if any: the limit at which the provider held what it held when it last refused. */
  get ceilingNow(): number {
    return this.ceiling;
  }

  /** Attempts the provider held when it last refused (Infinity before, or once it grew). */
  get edgeNow(): number {
    return this.edge;
  }

  /**
   * The provider refused an attempt sent at `sentAt` as overloaded or rate-limited while holding `atProvider` others;
   * `held` is the limit at which the endpoint would have had no more attempts than that (rules 5, 6); `inUse` the
   * slots its requests had taken, the refused one's and those waiting out a Retry-After included (omitted: all).
   */
  refused(sentAt: number, atProvider: number, held: number, retryAfterMs?: number, inUse = Infinity): void {
    // Held past the limit: streams from before the last cut are what the provider holds, the same overload.
    const sameOverload = sentAt <= this.lastCutAt || held > this.limit;
    if (inUse * UNDER_USED < this.limit || atProvider === 0) {
      // Refused while the endpoint's requests used under a quarter of its limit, or with none of them at the provider:
      // a rate quota, or a provider others fill, says little of what this endpoint can send at once. A gentle cut, no
      // hold, and the phase stays (a burst that follows it is still a burst on its way in, not an overload).
      if (sameOverload) return;
      this.lastCutAt = this.clock.now();
      this.set(Math.floor(CUT_TO * this.limit), 'overload');
      return;
    }
    if (retryAfterMs !== undefined && retryAfterMs > 0) this.hold(retryAfterMs);
    if (sameOverload) return;
    const to = Math.max(1, Math.floor(held));
    const edgeFound = this.limit > this.ceiling || atProvider >= this.edge - slack(this.edge);
    this.cut(to, edgeFound ? to : CUT_TO * to, 'overload');
    this.edge = Math.max(0, atProvider);
  }

  /** Holds growth for `ms`, 10 s at most (rule 8: a quota close to spent; rule 5: a Retry-After, which the provider sets). */
  hold(ms: number): void {
    this.holdUntil = Math.max(this.holdUntil, this.clock.now() + Math.min(ms, MAX_HOLD_MS));
  }

  /** A self-hosted server reports `waiting` requests in its own queue (in its metrics, read on the health check's schedule): rule 8, holding growth for `forMs`. */
  serverQueue(waiting: number, forMs: number): void {
    if (waiting <= 0) return;
    this.hold(forMs);
    this.gentleCut(this.clock.now(), 'server-queue');
  }

  private gentleCut(sentAt: number, why: LimitChange): void {
    if (sentAt <= this.lastCutAt) return;
    this.cut(this.limit, GENTLE_CUT_TO * this.limit, why);
    this.edge = Infinity;
  }

  /** Rule 3: the provider serves more than it held when it refused; the ceiling stays, for rule 5. */
  private grew(): void {
    this.slowStart = true;
    this.edge = Infinity;
  }

  private cut(ceiling: number, to: number, why: LimitChange): void {
    this.lastCutAt = this.clock.now();
    this.ceiling = Math.floor(ceiling);
    this.plateau = 0;
    this.slowStart = false;
    this.step = 1;
    this.round = 0;
    this.set(Math.floor(to), why);
  }

  /** Rule 7: records the sample; true when the recent time to first token is well above its long-run level. */
  private slowFirstToken(ms: number): boolean {
    const t = (this.ttft ??= { recent: ms, longRun: ms, samples: 0 });
    // Until each has its memory's worth of answers, it is their plain mean (not the first answer, smoothed).
    const n = ++t.samples;
    t.recent += Math.max(1 / n, TTFT_RECENT) * (ms - t.recent);
    t.longRun += Math.max(1 / n, TTFT_LONG_RUN) * (ms - t.longRun);
    if (n < TTFT_WARM_SAMPLES) return false;
    return t.recent > Math.max(2 * t.longRun, t.longRun + TTFT_SLACK_MS);
  }

  private set(next: number, why: LimitChange): void {
    const before = this.limit;
    this.value = clamp(next, this.settings);
    if (this.limit !== before) this.onChange(this.limit, why);
  }
}

const clamp = (n: number, { min, max }: AdaptiveLimitSettings) => Math.min(max, Math.max(min, n));
/** Rules 3, 5: what the endpoint's count of attempts may be off from the provider's by (streams it ended and the sidecar has not yet read end, attempts on their way): 5%, at least one. */
const slack = (edge: number) => (Number.isFinite(edge) ? Math.max(1, Math.floor(edge / 20)) : 0);
