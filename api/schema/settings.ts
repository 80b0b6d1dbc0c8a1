/**
 * The settings schemas: timeouts, backoff, the retry budget, retry, the
 * circuit breaker and the bulkhead, and SettingsSchema, which gathers them
 * for `spec.defaults` (an upstream takes the same fields, settingsProperties,
 * as its own). Every leaf carries its built-in default through `inherited()`,
 * so `spec.defaults` can override it.
 */
import { Type } from '@sinclair/typebox';
import { cel, celDuration, duration, failureClasses, inherited, percent, SIZE_PATTERN, stringEnum } from './shared.js';

export const TimeoutsSchema = Type.Object(
  {
    total: inherited(duration('Whole request including queueing, retries and fallbacks. An app may shorten it for one request with the header x-breakwater-timeout (such as 5s), never lengthen it.'), '120s'),
    attempt: inherited(duration('One upstream attempt, streaming included (a stream also ends by streamIdle and the total timeout). As long as the total by default, so a long answer, such as a reasoning model that thinks for a minute and a half before it writes, is not cut off, while firstByte, streamIdle and the throughput floor catch the attempts that hang.'), '120s'),
    firstByte: inherited(
      duration('To response headers, and for streams to the first content event: text, a tool call or reasoning (not a role-only chunk, a ping or a keep-alive). Long enough for a reasoning model that thinks before its first token; set it lower (say 10s) to fall back sooner from a slow first token.'),
      '60s',
    ),
    streamIdle: inherited(duration('Longest gap allowed between two stream chunks.'), '30s'),
    connect: inherited(
      duration('To open a connection to the upstream (TCP and TLS; a pooled one is reused at once). A SYN into a backend that went away (a pod deleted behind a Service) is dropped, not refused: past this the attempt fails as connect-failure and is retried, instead of waiting for firstByte (0 = no deadline of its own). Idle pooled connections are closed after 4 s, so none to a vanished backend is reused.'),
      '5s',
    ),
    fallbackHedge: inherited(
      duration('A stream with no first content event after this long is also sent to the first fallback upstream tier that takes a timeout; the first to give content wins and the other is cancelled (0 = off). Costs at most one extra request, only for slow first tokens.'),
      '10s',
    ),
    perOutputToken: inherited(
      duration('If above zero: attempt = min(attempt, firstByte + max_tokens x perOutputToken).'),
      '0ms',
    ),
  },
  { additionalProperties: false, description: 'Timeouts of a request and of each attempt.' },
);

export const BackoffSchema = Type.Object(
  {
    base: inherited(duration('Delay before the first retry.'), '250ms'),
    max: inherited(duration('Largest delay between attempts.'), '10s'),
    multiplier: inherited(Type.Number({ minimum: 1, maximum: 10, description: 'Growth factor per retry.' }), 2),
    jitter: inherited(
      stringEnum(['full', 'equal', 'decorrelated', 'none'], { description: 'How the delay is randomised.' }),
      'full',
    ),
  },
  {
    additionalProperties: false,
    description: 'Exponential backoff between attempts.',
    ...cel({
      rule: `!has(self.base) || !has(self.max) || !${celDuration('self.base')} || !${celDuration('self.max')} || duration(self.base) <= duration(self.max)`,
      message: 'retry.backoff.base must not exceed retry.backoff.max',
    }),
  },
);

export const RetryBudgetSchema = Type.Object(
  {
    ratio: inherited(percent('Retries allowed as a percentage of requests in the window.'), 20),
    minPerSecond: inherited(
      Type.Integer({ minimum: 0, maximum: 10000, description: 'Retries per second always allowed, whatever the ratio.' }),
      5,
    ),
    window: inherited(duration('Window over which requests and retries are counted.'), '10s'),
  },
  { additionalProperties: false, description: 'Retry budget (as in Envoy and Linkerd): bounds retries under load. Retries in the window are at most minPerSecond x window + ratio% of the requests in the window.' },
);

export const RetrySchema = Type.Object(
  {
    attempts: inherited(
      Type.Integer({ minimum: 1, maximum: 10, description: 'Total attempts on this upstream, the first included.' }),
      3,
    ),
    backoff: Type.Optional(BackoffSchema),
    on: failureClasses('Failure classes that are retried. A timeout of the addressed upstream is not retried there when a fallback upstream tier would take it: a route that never answers costs one attempt, and the fallback answers.', [
      'rate-limited',
      'overloaded',
      'server-error',
      'timeout',
      'connect-failure',
      'reset',
    ]),
    statusCodes: inherited(
      Type.Array(Type.Integer({ minimum: 400, maximum: 599 }), {
        uniqueItems: true,
        description: 'HTTP statuses that are retried (when their class is in `on`).',
      }),
      [429, 500, 502, 503, 504, 529],
    ),
    respectRetryAfter: inherited(
      Type.Boolean({ description: 'Wait as the upstream asks before retrying: retry-after-ms, Retry-After (seconds or an HTTP date) and, for a limit that is spent, x-ratelimit-reset-* (OpenAI) and anthropic-ratelimit-*-reset; never less than the backoff (a Retry-After of 0 or a date gone by would send the attempts back to back).' }),
      true,
    ),
    maxRetryAfter: inherited(duration('Asked to wait longer than this: no such wait is made, and the upstream\'s answer is passed on (or the next fallback tier answers).'), '30s'),
    budget: Type.Optional(RetryBudgetSchema),
    maxBodyBytes: inherited(
      Type.String({ pattern: SIZE_PATTERN, description: 'Request bodies up to this size are buffered for replay; larger ones are streamed to the first tier once, never retried or sent to another tier. A size such as 512Ki or 10Mi.' }),
      '10Mi',
    ),
  },
  { additionalProperties: false, description: 'Retries with backoff, Retry-After and a budget.' },
);

export const CircuitBreakerSchema = Type.Object(
  {
    scope: inherited(
      stringEnum(['upstream', 'model'], {
        description: 'One breaker per upstream, or one per upstream and model (the JSON body field `model`).',
      }),
      'model',
    ),
    consecutiveFailures: inherited(
      Type.Integer({ minimum: 0, maximum: 1000, description: 'Opens after this many failures in a row (0 = off).' }),
      5,
    ),
    failureRate: Type.Optional(Type.Object(
      {
        threshold: inherited(percent('Opens when failures reach this percentage of calls in the window (0 = off).'), 50),
        minRequests: inherited(
          Type.Integer({ minimum: 1, maximum: 100000, description: 'Calls needed in the window before the rate counts.' }),
          20,
        ),
        window: inherited(duration('Sliding window for the failure and slow-call rates.'), '30s'),
      },
      { additionalProperties: false, description: 'Failure rate over a sliding time window.' },
    )),
    slowCall: Type.Optional(Type.Object(
      {
        threshold: inherited(percent('Opens when slow calls reach this percentage of calls in the window (0 = off).'), 80),
        duration: inherited(duration('A call slower than this (for streams: to the first content event) is slow.'), '30s'),
      },
      { additionalProperties: false, description: 'Slow-call rate, over failureRate.window.' },
    )),
    openFor: inherited(duration('How long the breaker stays open; doubles on each re-open. Short, so a flapping primary is probed and taken back soon after it heals.'), '10s'),
    maxOpenFor: inherited(duration('Cap on the doubled open time: the longest a healed primary waits to be taken back (a request must come to probe it).'), '20s'),
    halfOpen: Type.Optional(Type.Object(
      {
        maxProbes: inherited(Type.Integer({ minimum: 1, maximum: 100, description: 'Probe calls let through at once while half-open.' }), 1),
        successesToClose: inherited(Type.Integer({ minimum: 1, maximum: 100, description: 'Successful probes that close the breaker.' }), 2),
      },
      { additionalProperties: false, description: 'Half-open probing: once openFor has passed, a few calls go through, and enough successes close the breaker.' },
    )),
    failOn: failureClasses('Failure classes that count against the breaker. By default an overloaded upstream (503, 529) is probed, not hammered; rate-limited and client-error are opt-in.', [
      'overloaded',
      'server-error',
      'timeout',
      'connect-failure',
      'reset',
      'invalid-response',
    ]),
  },
  {
    additionalProperties: false,
    description: 'Circuit breaker: stops calling an upstream (or one of its models) that keeps failing, and probes it again after openFor.',
    ...cel({
      rule: `!has(self.openFor) || !has(self.maxOpenFor) || !${celDuration('self.openFor')} || !${celDuration('self.maxOpenFor')} || duration(self.openFor) <= duration(self.maxOpenFor)`,
      message: 'circuitBreaker.openFor must not exceed circuitBreaker.maxOpenFor',
    }),
  },
);

export const BulkheadSchema = Type.Object(
  {
    mode: inherited(
      stringEnum(['adaptive', 'fixed'], {
        description:
          'adaptive: the limit of requests in flight is learnt per endpoint from what the provider says (429, 503 and 529 with their Retry-After, rate-limit headers close to spent, time to first token, a self-hosted server\'s queue in its metrics, healthCheck.metricsPath), within adaptive.min and adaptive.max. fixed: it is maxConcurrent. A policy that sets maxConcurrent and not mode is fixed, as it was before the adaptive mode.',
      }),
      'adaptive',
    ),
    maxConcurrent: inherited(Type.Integer({ minimum: 1, maximum: 10000, description: 'In fixed mode: requests in flight to this upstream at once.' }), 32),
    adaptive: Type.Optional(Type.Object(
      {
        min: inherited(Type.Integer({ minimum: 1, maximum: 10000, description: 'The adaptive limit never goes below this.' }), 4),
        initial: inherited(Type.Integer({ minimum: 1, maximum: 10000, description: 'Where the adaptive limit starts; it doubles per round of good first answers until the provider first refuses.' }), 32),
        max: inherited(Type.Integer({ minimum: 1, maximum: 10000, description: 'The adaptive limit never goes above this.' }), 1024),
      },
      {
        additionalProperties: false,
        description: 'Bounds of the adaptive limit (mode adaptive), for the upstream (its endpoints\' limits add up to it).',
        ...cel({ rule: '!has(self.min) || !has(self.max) || self.min <= self.max', message: 'bulkhead.adaptive.min must not exceed bulkhead.adaptive.max' }),
      },
    )),
    maxQueue: inherited(Type.Integer({ minimum: 0, maximum: 100000, description: 'Requests waiting for a slot. Enough for a burst of streams while the adaptive limit opens (500 streams at once wait well under a second against a provider that takes them).' }), 1024),
    queueTimeout: inherited(duration('Longest wait for a slot.'), '5s'),
    fairBy: Type.Optional(Type.Object(
      {
        header: inherited(
          Type.String({ maxLength: 64, pattern: "^([!#$%&'*+.^_`|~0-9A-Za-z-]+)?$", description: 'Header that names the caller (a tenant, the app\'s service account): requests waiting for a slot are let in by priority class, then fairly between callers by tokens (the input at ~4 bytes a token plus max_tokens, or 512 without it), so one caller\'s long prompts cannot starve the others. Values are cut to 128 characters, 64 distinct callers are told apart per class (the rest share one), and a value is never logged. Empty: off (first come, first served).' }),
          '',
        ),
      },
      { additionalProperties: false, description: 'Token-fair admission between callers within a priority class.' },
    )),
  },
  { additionalProperties: false, description: 'Concurrency limit, adaptive or fixed, with a priority queue that is fair between callers.' },
);

/** The fields of SettingsSchema, which every upstream also takes as its own. */
export const settingsProperties = {
  timeouts: Type.Optional(TimeoutsSchema),
  retry: Type.Optional(RetrySchema),
  circuitBreaker: Type.Optional(CircuitBreakerSchema),
  bulkhead: Type.Optional(BulkheadSchema),
};

export const SettingsSchema = Type.Object(settingsProperties, {
  additionalProperties: false,
  description: 'Settings merged under every upstream\'s own settings.',
});
