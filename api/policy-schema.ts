/**
 * The one schema of a ResiliencePolicy spec: the contract, as `kubectl explain rp.spec`
 * and docs/policy-reference.md (generated from it) show it (every field has a description).
 *
 * Everything else derives from it: the TypeScript types (`Static`), the local
 * policy-file validator (Ajv), the CRD's openAPIV3Schema, and the built-in
 * defaults. Settings that `spec.defaults` can override (timeouts, retry,
 * circuitBreaker, bulkhead) carry their built-in default as the annotation
 * `x-breakwater-default` rather than JSON Schema `default`: a `default` there
 * would be filled into every upstream and silently beat `spec.defaults`.
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { API_FAMILY_NAMES } from './api-families.js';
import { FAILURE_CLASSES } from './failure-classes.js';
import { MAX_SECRET_NAME, SECRET_KEY_PATTERN, SECRET_NAME_PATTERN } from './secret-names.js';
import { MAX_DURATION, MAX_DURATION_CHARS, MONEY_PATTERN, OBJECTIVE_PATTERN } from './units.js';

export const DURATION_PATTERN = '^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$';
export const SIZE_PATTERN = '^[0-9]+(\\.[0-9]+)?(Ki|Mi|Gi|k|M|G)?$';
export const DNS_LABEL_PATTERN = '^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$';

/** Annotation key for a default inherited through `spec.defaults`. */
export const INHERITED_DEFAULT = 'x-breakwater-default';

/**
 * A cross-field rule as the CRD states it (CEL, checked by the API server); the
 * same rules are checked locally in validate-policy.ts, and the end-to-end
 * tests hold both to the same invalid examples. A `messageExpression` names
 * the bad value and where it is (`message` stays as its fallback).
 */
const cel = (...rules: { rule: string; message: string; messageExpression?: string }[]) => ({ 'x-kubernetes-validations': rules });

/**
 * A duration with a part of at least 1000h, 100000m, 10^7 s or 10^10 ms: longer
 * than MAX_DURATION (596h) whatever else it holds. CEL's duration() fails on the
 * longest of these (past 2^63 ns), so the CEL rules say "too long" before calling it.
 */
export const DURATION_TOO_LONG = '(^|[hms])0*([1-9][0-9]{3,}(\\.[0-9]+)?h|[1-9][0-9]{5,}(\\.[0-9]+)?m([0-9]|$)|[1-9][0-9]{7,}(\\.[0-9]+)?s|[1-9][0-9]{10,}(\\.[0-9]+)?ms)';

/**
 * CEL: whether the string `x` is a duration CEL's duration() reads. A string the
 * pattern refuses is reported by the pattern alone: a CEL rule that called
 * duration() on it would add "type conversion error" to the answer.
 */
const celDuration = (x: string) => `(${x}.matches(r'${DURATION_PATTERN}') && !${x}.matches(r'${DURATION_TOO_LONG}'))`;

/** A duration: at most MAX_DURATION, the longest wait a timer can hold (setTimeout's 2^31-1 ms). */
const duration = (description: string, options: { default?: string } = {}) =>
  Type.String({
    pattern: DURATION_PATTERN,
    maxLength: MAX_DURATION_CHARS,
    description: `${description} A duration such as 250ms, 30s, 5m, 1h (at most ${MAX_DURATION}).`,
    ...options,
    ...cel({
      rule: `!self.matches(r'${DURATION_PATTERN}') || (!self.matches(r'${DURATION_TOO_LONG}') && duration(self) <= duration('${MAX_DURATION}'))`,
      message: `must be at most ${MAX_DURATION}`,
    }),
  });
const percent = (description: string) => Type.Integer({ minimum: 0, maximum: 100, description });

/** A settings leaf: its built-in default travels as an annotation and in the description. */
function inherited<T extends TSchema>(schema: T, value: unknown) {
  const description = `${schema.description ?? ''} Default: ${JSON.stringify(value)}.`.trim();
  return Type.Optional({ ...schema, description, [INHERITED_DEFAULT]: value } as T);
}

/** A string that must be one of `values`: a JSON Schema `enum`, so errors and `kubectl explain` list the choices. */
function stringEnum<const T extends readonly string[]>(values: T, options: { description?: string; default?: T[number] } = {}) {
  return Type.Unsafe<T[number]>({ type: 'string', enum: [...values], ...options });
}

const money = (description: string, options: { default?: string } = {}) => Type.String({ pattern: MONEY_PATTERN, maxLength: 16, description, ...options });

/** A token and cost budget, for the whole policy or one upstream. */
const budget = (whose: string) =>
  Type.Object(
    {
      window: stringEnum(['hour', 'day'], { default: 'hour', description: 'What the limits are per: each clock hour, or each UTC day. Spending starts again from zero when the window rolls.' }),
      tokens: Type.Integer({ minimum: 0, maximum: 1_000_000_000_000, default: 0, description: 'Input plus output tokens per window (0 = no limit).' }),
      cost: money('Cost per window, in the currency of the upstreams\' prices (0 = no limit).', { default: '0' }),
    },
    {
      additionalProperties: false,
      default: {},
      description: `A token and cost budget for ${whose} (opt-in), kept by each sidecar for its pod and across its restarts. Each request reserves what it may use (input at ~4 bytes a token, plus its max_tokens) and is charged what its answer reports. Over budget: 429 budget_exhausted with Retry-After until the window rolls, or the next fallback tier whose when lists budget-exhausted.`,
    },
  );
const objective = (description: string) => Type.String({ pattern: OBJECTIVE_PATTERN, maxLength: 6, default: '0', description: `${description} A percentage below 100 such as 99 or 99.9; 0 = not tracked.` });

const hasCost = (at: string) => `!has(${at}.budget) || !has(${at}.budget.cost) || double(${at}.budget.cost) == 0.0`;

const failureClass = stringEnum(FAILURE_CLASSES, {
  description:
    'A failure class: rate-limited (429), overloaded (503, 529 or an overloaded error body), server-error (other 5xx), timeout, connect-failure, reset, context-length, content-filter, invalid-response (an answer that fails validation or a cap), diverged (a recovered stream that is not the answer the app has) or client-error (other 4xx).',
});
const failureClasses = (description: string, value: readonly string[]) =>
  inherited(Type.Array(failureClass, { description, uniqueItems: true }), value);

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
      Type.Boolean({ description: 'Wait as the upstream asks before retrying: retry-after-ms, Retry-After (seconds or an HTTP date) and, for a limit that is spent, x-ratelimit-reset-* (OpenAI) and anthropic-ratelimit-*-reset.' }),
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
    maxConcurrent: inherited(Type.Integer({ minimum: 1, maximum: 10000, description: 'Requests in flight to this upstream at once.' }), 32),
    maxQueue: inherited(Type.Integer({ minimum: 0, maximum: 100000, description: 'Requests waiting for a slot.' }), 128),
    queueTimeout: inherited(duration('Longest wait for a slot.'), '5s'),
  },
  { additionalProperties: false, description: 'Concurrency limit with a priority queue.' },
);

const settingsProperties = {
  timeouts: Type.Optional(TimeoutsSchema),
  retry: Type.Optional(RetrySchema),
  circuitBreaker: Type.Optional(CircuitBreakerSchema),
  bulkhead: Type.Optional(BulkheadSchema),
};

export const SettingsSchema = Type.Object(settingsProperties, {
  additionalProperties: false,
  description: 'Settings merged under every upstream\'s own settings.',
});

/** A key of a Secret in the policy's namespace, which the controller reads and sends to the sidecar (and follows when it changes). */
const secretRef = (what: string) =>
  Type.Object(
    {
      name: Type.String({ pattern: SECRET_NAME_PATTERN, maxLength: MAX_SECRET_NAME, description: 'Secret name in the policy\'s namespace.' }),
      key: Type.String({ pattern: SECRET_KEY_PATTERN, maxLength: MAX_SECRET_NAME, description: 'Key in the Secret.' }),
    },
    { additionalProperties: false, description: `${what}: a key of a Secret in the policy's namespace. In a cluster only: the controller reads it and sends its value to the sidecar, and a changed value is used from the next request. The Secret must be labelled breakwater.dev/credential: "true" (its owner's consent: whoever may write a policy may name any Secret) and not be a service-account or bootstrap token; the value must be printable ASCII (white space around it is dropped), at most 16 KiB. Until then the sidecar has none (an upstream answers 503 rather than be called without its key; the shared cache connects without a password), and the policy's Accepted condition is False (SecretNotFound, SecretNotAllowed or SecretValueUnusable) and says why.` },
  );

export const AuthSchema = Type.Object(
  {
    secretRef: Type.Optional(secretRef('The credential')),
    env: Type.Optional(Type.String({ minLength: 1, description: 'Locally: read the credential from this environment variable of the sidecar.' })),
    file: Type.Optional(Type.String({ minLength: 1, description: 'Locally: read the credential from this file.' })),
    header: Type.String({ default: 'Authorization', minLength: 1, maxLength: 64, pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", description: 'Header the credential is sent in (an HTTP header name).' }),
    prefix: Type.String({ default: 'Bearer ', maxLength: 64, pattern: '^[\\t\\x20-\\x7e]*$', description: 'Text put before the credential (printable ASCII: no CR, LF or NUL).' }),
  },
  {
    additionalProperties: false,
    description: 'Credential the sidecar sets when calling this upstream: header is set to prefix + the credential, in place of the app\'s own credentials, which are not sent.',
    ...cel({ rule: '[has(self.secretRef), has(self.env), has(self.file)].filter(x, x).size() == 1', message: 'auth: exactly one of secretRef, env or file must be set' }),
  },
);

export const FallbackTierSchema = Type.Object(
  {
    upstream: Type.Optional(Type.String({ pattern: DNS_LABEL_PATTERN, maxLength: 63, description: 'Another upstream of this policy, called with its own breaker, bulkhead, retries and credentials (the app\'s credentials go only to the upstream it addressed).' })),
    model: Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: 'Rewrite the request\'s model for this tier.' })),
    cache: Type.Optional(Type.Object({}, { additionalProperties: false, description: 'The last good answer to an identical request (the stream flag aside: a streaming request gets it as a well-formed stream).' })),
    static: Type.Optional(
      Type.Object(
        { message: Type.String({ minLength: 1, description: 'Content of the degraded answer.' }) },
        { additionalProperties: false, description: 'A degraded answer in the upstream\'s API shape, plain or streamed, marked x-breakwater-degraded: true.' },
      ),
    ),
    when: Type.Optional(
      Type.Array(stringEnum([...FAILURE_CLASSES, 'unavailable', 'budget-exhausted']), {
        uniqueItems: true,
        description: 'Conditions under which this tier is tried (default: any failure the app did not cause, except a content-filter refusal, which goes only to a tier whose when names content-filter). unavailable: breaker open, bulkhead full or retries exhausted; budget-exhausted: the upstream\'s or the policy\'s token or cost budget is spent.',
      }),
    ),
  },
  {
    additionalProperties: false,
    description: 'One fallback tier: exactly one of upstream, cache, static.',
    ...cel(
      { rule: '[has(self.upstream), has(self.cache), has(self.static)].filter(x, x).size() == 1', message: 'fallback: exactly one of upstream, cache or static must be set' },
      { rule: '!has(self.model) || has(self.upstream)', message: 'fallback.model only applies to an upstream tier' },
    ),
  },
);

const httpUrl = Type.String({
  pattern: '^https?://[^\\s/@?#]+(/[^\\s?#]*)?$',
  maxLength: 2048,
  description: 'http or https URL, with an optional base path; no credentials (use auth), query or fragment.',
});

export const UpstreamSchema = Type.Object(
  {
    name: Type.String({ pattern: DNS_LABEL_PATTERN, maxLength: 63, description: 'DNS label; apps reach it at http://127.0.0.1:15001/<name>/...' }),
    url: Type.Optional(httpUrl),
    api: stringEnum(API_FAMILY_NAMES, {
      default: 'openai',
      description: 'API family: the error shape, the stream framing and terminator, the model field and where usage is found. A fallback or hedge upstream speaks the api of the upstream it serves (the app\'s request and answer are in that API).',
    }),
    env: Type.Array(Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*$' }), {
      default: [],
      uniqueItems: true,
      description: 'App environment variables the injector points at this upstream (never overriding a value set).',
    }),
    auth: Type.Optional(AuthSchema),
    endpoints: Type.Optional(
      Type.Array(
        Type.Object(
          { url: httpUrl, weight: Type.Integer({ minimum: 1, maximum: 1000, default: 1, description: 'Weight for weighted balancing.' }) },
          { additionalProperties: false },
        ),
        { minItems: 1, maxItems: 64, description: 'Several replicas, regions or keys instead of url.' },
      ),
    ),
    loadBalancing: stringEnum(['round-robin', 'weighted', 'least-outstanding'], {
      default: 'least-outstanding',
      description: 'How endpoints are chosen.',
    }),
    ...settingsProperties,
    rateLimit: Type.Object(
      {
        requestsPerMinute: Type.Integer({ minimum: 0, default: 0, description: 'Client-side request rate limit (0 = off).' }),
        tokensPerMinute: Type.Integer({ minimum: 0, default: 0, description: 'Client-side token rate limit (0 = off).' }),
      },
      { additionalProperties: false, default: {}, description: 'Client-side rate limits (opt-in). Tokens are estimated from max_tokens and the body and corrected by the reported usage; each bucket lets at most ten seconds\' worth through at once. A request over a limit waits up to the bulkhead\'s queueTimeout (and its deadline), then gets 429 rate_limited with Retry-After.' },
    ),
    limits: Type.Object(
      {
        maxAnswerBytes: Type.String({
          pattern: SIZE_PATTERN,
          default: '64Mi',
          description: 'Largest plain answer (buffered whole to be classified, validated and cached); a larger one fails the attempt as invalid-response.',
        }),
        maxStreamHeadBytes: Type.String({
          pattern: SIZE_PATTERN,
          maxLength: 16,
          default: '1Mi',
          description: 'Most a stream may send before its first content event (comments, keep-alives); past it the attempt fails as invalid-response.',
        }),
      },
      { additionalProperties: false, default: {}, description: 'Caps on what the sidecar holds of an upstream answer.' },
    ),
    streamRecovery: Type.Object(
      {
        maxRecoveries: Type.Integer({
          minimum: 0,
          maximum: 3,
          default: 1,
          description:
            'A stream that breaks after text reached the app (cut, stall, error event) is continued from a new attempt of the chain: at most this many times per request (0 = off).',
        }),
        continuation: stringEnum(['auto', 'prefill', 'continue-final-message', 'off'], {
          default: 'auto',
          description:
            'How this upstream, as the tier a recovery lands on, is asked to continue the text already delivered. prefill: the text as a trailing assistant message (Anthropic, llama.cpp\'s server, Ollama). continue-final-message: the same with continue_final_message (vLLM, SGLang, TGI). off: the request is sent again and its new answer verified against the text (regenerate and verify), as also happens when a continuation is refused with a 4xx. auto: prefill for anthropic and ollama, off for openai and generic (OpenAI does not continue a prefill).',
        }),
      },
      { additionalProperties: false, default: {}, description: 'Mid-stream recovery.' },
    ),
    throughputFloor: Type.Object(
      {
        bytesPerSecond: Type.Integer({ minimum: 0, maximum: 1_000_000_000, default: 0, description: 'Least a stream must send per second, measured over `window` from its first content event (0 = off). Below it, the stream counts as stalled: it fails as timeout, and is recovered where it can be.' }),
        window: duration('The window the floor is measured over.', { default: '10s' }),
      },
      { additionalProperties: false, default: {}, description: 'A floor under a stream\'s throughput (opt-in).' },
    ),
    healthCheck: Type.Object(
      {
        path: Type.String({
          pattern: '^(/[!-~]*)?$',
          maxLength: 256,
          default: '',
          description: 'Path probed on each endpoint\'s origin, such as /health (llama.cpp, vLLM, TGI) or / (Ollama); empty = off. Healthy: a 2xx whose JSON, if any, says neither loading nor error nor no free slot (llama.cpp\'s slots_idle: 0). An unhealthy endpoint takes no traffic.',
        }),
        interval: duration('Time from the end of one probe to the start of the next.', { default: '5s' }),
        timeout: duration('A probe that takes longer fails.', { default: '2s' }),
        healthyThreshold: Type.Integer({ minimum: 1, maximum: 10, default: 1, description: 'Good probes in a row that make an unhealthy endpoint healthy.' }),
        unhealthyThreshold: Type.Integer({ minimum: 1, maximum: 10, default: 2, description: 'Failed probes in a row that make a healthy endpoint unhealthy.' }),
      },
      { additionalProperties: false, default: {}, description: 'Active health checks of each endpoint (opt-in). The sidecar is ready once every first probe has answered (at most timeout); an endpoint a reload adds is tried after the healthy ones until its first probe answers.' },
    ),
    apiVersion: Type.Optional(
      Type.String({
        pattern: '^[A-Za-z0-9._-]{1,64}$',
        description: 'Azure OpenAI: the api-version set on every request to this upstream (in place of the app\'s), so that a fallback or hedge tier serving an OpenAI app can reach Azure: with url https://<resource>.openai.azure.com/openai (Azure\'s v1 paths) and auth {header: api-key, prefix: \'\'}, an Azure deployment can be the fallback or hedge tier of an OpenAI upstream.',
      }),
    ),
    websockets: Type.Boolean({
      default: true,
      description: 'Whether apps may open WebSockets (the Realtime API) to this upstream through the sidecar: tunnelled with its auth, a handshake timeout (timeouts.firstByte), its breaker and a bulkhead slot for as long as each is open. false: an upgrade gets 403.',
    }),
    hedge: Type.Object(
      {
        delay: duration('Send one hedge (a second attempt, at this upstream or the one named in upstream) when the first has no first token (streams) or answer after this long; 0s = off. Hedges draw on the retry budget and are never sent through an open breaker of their target; the first to answer wins and the other is cancelled.', { default: '0s' }),
        upstream: Type.Optional(Type.String({ pattern: DNS_LABEL_PATTERN, maxLength: 63, description: 'Another upstream of this policy to send the hedge to (with its own credentials), instead of this one.' })),
        model: Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: 'Rewrite the hedge\'s model (with upstream).' })),
        percentile: Type.Integer({
          minimum: 0,
          maximum: 99,
          default: 0,
          description: 'When set (50-99) and at least 20 first-token times were seen, the hedge delay is this percentile of the last 100 (never below delay). 0 = the fixed delay.',
        }),
      },
      { additionalProperties: false, default: {}, description: 'Hedged requests against slow first tokens (opt-in). Only requests whose body is kept for retries are hedged.' },
    ),
    prices: Type.Array(
      Type.Object(
        {
          model: Type.String({ minLength: 1, maxLength: 256, description: 'A model name, or a prefix ending in * (gpt-4o*). An exact name beats a prefix, and a longer prefix a shorter one.' }),
          input: money('Price of a million input tokens.'),
          output: money('Price of a million output tokens.'),
        },
        { additionalProperties: false },
      ),
      {
        default: [],
        maxItems: 64,
        description: 'Per-model prices, for cost budgets. A model of this upstream that no entry names is charged at the highest listed price; an upstream without prices (a self-hosted model) costs nothing.',
      },
    ),
    budget: budget('this upstream'),
    guards: Type.Object(
      {
        maxInputBytes: Type.Integer({ minimum: 0, maximum: 1 << 30, default: 0, description: 'Largest request body, in bytes (0 = off).' }),
        maxInputTokens: Type.Integer({
          minimum: 0,
          maximum: 100_000_000,
          default: 0,
          description: 'Most input tokens a request may carry, estimated as the UTF-8 bytes of its message text divided by 4 (0 = off).',
        }),
        deny: Type.Array(
          Type.Object(
            {
              name: Type.String({ pattern: DNS_LABEL_PATTERN, maxLength: 63, description: 'The guard\'s name: the only thing said or logged about a request it blocks.' }),
              pattern: Type.String({
                minLength: 1,
                maxLength: 512,
                description: 'An RE2 regular expression (linear-time: no backreferences or lookaround) searched for in the request\'s message text.',
              }),
              ignoreCase: Type.Boolean({ default: true, description: 'Match regardless of case.' }),
            },
            { additionalProperties: false },
          ),
          { default: [], maxItems: 16, description: 'Patterns that block a request whose message text contains a match.' },
        ),
      },
      {
        additionalProperties: false,
        default: {},
        description:
          'Input guards (opt-in): a request that trips one gets 400 guardrail_blocked in the API\'s error shape and never reaches the upstream. Deny patterns read at most 1 MiB of message text; a body they cannot read whole (past retry.maxBodyBytes, not JSON, or more text than that) is blocked.',
        ...cel({ rule: '!has(self.deny) || self.deny.all(d, self.deny.exists_one(e, e.name == d.name))', message: 'guards.deny[].name must be unique' }),
      },
    ),
    fallback: Type.Array(FallbackTierSchema, { default: [], maxItems: 16, description: 'Tried in order once this upstream cannot answer.' }),
  },
  {
    additionalProperties: false,
    description: 'A model API the app calls through the sidecar.',
    ...cel(
      { rule: 'has(self.url) != has(self.endpoints)', message: 'exactly one of url or endpoints must be set' },
      { rule: `${hasCost('self')} || (has(self.prices) && size(self.prices) > 0)`, message: 'budget.cost needs prices for this upstream\'s models' },
    ),
  },
);

const labelSelector = Type.Object(
  {
    matchLabels: Type.Optional(Type.Record(Type.String(), Type.String(), { description: 'Labels a pod must carry.' })),
    matchExpressions: Type.Optional(
      Type.Array(
        Type.Object(
          {
            key: Type.String({ description: 'A label key.' }),
            operator: stringEnum(['In', 'NotIn', 'Exists', 'DoesNotExist'], { description: 'How the label is matched: In or NotIn values, or whether the key Exists or DoesNotExist.' }),
            values: Type.Optional(Type.Array(Type.String(), { description: 'Values for In and NotIn; empty for Exists and DoesNotExist.' })),
          },
          { additionalProperties: false },
        ),
        { description: 'Label expressions a pod must satisfy.' },
      ),
    ),
  },
  { additionalProperties: false, description: 'Pods in this namespace that use this policy (the oldest policy that matches a pod wins). Without it, only pods that name this policy in the annotation breakwater.dev/policy use it.' },
);

const DEFAULT_CLASS = 'normal';
const DEFAULT_CLASSES = [{ name: 'critical', reserved: 25 }, { name: 'normal' }, { name: 'batch', maxShare: 20 }];

export const PrioritiesSchema = Type.Object(
  {
    default: Type.String({ default: DEFAULT_CLASS, maxLength: 63, description: 'Class of requests without x-breakwater-priority.' }),
    classes: Type.Array(
      Type.Object(
        {
          name: Type.String({ pattern: DNS_LABEL_PATTERN, maxLength: 63, description: 'Class name, as sent in x-breakwater-priority.' }),
          reserved: Type.Integer({ minimum: 0, maximum: 100, default: 0, description: 'Share of bulkhead slots only this class may use.' }),
          maxShare: Type.Integer({ minimum: 1, maximum: 100, default: 100, description: 'Largest share of bulkhead slots this class may hold.' }),
        },
        { additionalProperties: false },
      ),
      {
        minItems: 1,
        maxItems: 8,
        default: DEFAULT_CLASSES,
        description: 'Bulkhead classes, most important first: queued requests are admitted in this order.',
        'x-kubernetes-list-type': 'map',
        'x-kubernetes-list-map-keys': ['name'],
      },
    ),
  },
  {
    additionalProperties: false,
    default: {},
    description: 'Bulkhead priority classes chosen by the request header x-breakwater-priority.',
    ...cel(
      {
        // The API server stores what the user wrote: an absent default or classes list is the product's default.
        rule: `(has(self.classes) ? self.classes.map(c, c.name) : ${JSON.stringify(DEFAULT_CLASSES.map((c) => c.name)).replaceAll('"', "'")}).exists(n, n == (has(self.default) ? self.default : '${DEFAULT_CLASS}'))`,
        message: 'priorities.default must name one of priorities.classes',
        messageExpression: `'priorities.default "' + (has(self.default) ? self.default : '${DEFAULT_CLASS}') + '" must name one of priorities.classes'`,
      },
      {
        rule: '!has(self.classes) || self.classes.size() < 2 || self.classes.map(c, has(c.reserved) ? c.reserved : 0).sum() < 100',
        message: 'the classes\' reserved shares must add up to less than 100, or some class could never run',
      },
    ),
  },
);

/*
 * The spec-level rules and their messages use only the CEL that Kubernetes 1.29
 * (the oldest release the chart supports) takes in a new CRD: CEL as of 1.28, so
 * no format(), two-variable comprehensions or flatten(). Nor string(int) or join():
 * the API server's cost estimate of those has no bound. A message finds the first
 * bad item with map(bad).indexOf(true) and spells its index from a table.
 */
type Cel = string;
/** CEL: an upstream's api, as written or by default. */
const celApi = (u: Cel) => `(has(${u}.api) ? ${u}.api : 'openai')`;
/** CEL: index `i` (below 32, as every list here is) in decimal. */
const celIndex = (i: Cel) => `[${Array.from({ length: 32 }, (_, n) => `'${n}'`).join(', ')}][${i}]`;
/** CEL: the index of the first item `x` of `list` for which `bad` holds. */
const firstIndex = (list: Cel, x: string, bad: Cel) => `${list}.map(${x}, ${bad}).indexOf(true)`;

/** Upstream `u`'s fallback tier `f` names this upstream itself or no upstream of the policy. */
const otherTier = (u: Cel, f: Cel) => `has(${f}.upstream) && (${f}.upstream == ${u}.name || !self.upstreams.exists(v, v.name == ${f}.upstream))`;
/** Upstream `u`'s fallback tier `f` names an upstream that speaks another api. */
const mixedTier = (u: Cel, f: Cel) => `has(${f}.upstream) && self.upstreams.exists(v, v.name == ${f}.upstream && ${celApi('v')} != ${celApi(u)})`;
const otherHedge = (u: Cel) => `has(${u}.hedge) && has(${u}.hedge.upstream) && (${u}.hedge.upstream == ${u}.name || !self.upstreams.exists(v, v.name == ${u}.hedge.upstream))`;
const mixedHedge = (u: Cel) => `has(${u}.hedge) && has(${u}.hedge.upstream) && self.upstreams.exists(v, v.name == ${u}.hedge.upstream && ${celApi('v')} != ${celApi(u)})`;

/**
 * CEL: `body` with the int `name` bound to `value`, computed once (a one-item map:
 * CEL as of 1.28 has no cel.bind). Only for ints: an object bound this way loses
 * the bounds of its strings, and the cost estimate with them.
 */
const celLet = (name: string, value: Cel, body: Cel) => `[${value}].map(${name}, ${body})[0]`;

/** CEL, for a message: what the upstream named `target` speaks, what `u` speaks, and `why` that is refused. */
const speaksOther = (u: Cel, target: Cel, why: string) =>
  celLet('k', firstIndex('self.upstreams', 'v', `v.name == ${target}`), `'speaks ' + ${celApi('self.upstreams[k]')} + ', and "' + ${u}.name + '" ' + ${celApi(u)} + ': ${why}'`);

/** A rule over every fallback tier; its message names the first bad one by index and value, then what `says` of it. */
function tierRule(bad: (u: Cel, f: Cel) => Cel, message: string, says: (u: Cel, f: Cel) => Cel) {
  const hasBadTier = `has(u.fallback) && u.fallback.exists(f, ${bad('u', 'f')})`;
  const [u, f] = ['self.upstreams[i]', 'self.upstreams[i].fallback[j]'];
  return {
    rule: `!self.upstreams.exists(u, ${hasBadTier})`,
    message,
    messageExpression: celLet(
      'i',
      firstIndex('self.upstreams', 'u', hasBadTier),
      celLet('j', firstIndex(`${u}.fallback`, 't', bad(u, 't')), `'spec.upstreams[' + ${celIndex('i')} + '].fallback[' + ${celIndex('j')} + '].upstream: "' + ${f}.upstream + '" ' + ${says(u, f)}`),
    ),
  };
}

/** A rule over every upstream's hedge; its message names the first bad one by index and value, then what `says` of it. */
function hedgeRule(bad: (u: Cel) => Cel, message: string, says: (u: Cel) => Cel) {
  const u = 'self.upstreams[i]';
  return {
    rule: `!self.upstreams.exists(u, ${bad('u')})`,
    message,
    messageExpression: celLet('i', firstIndex('self.upstreams', 'u', bad('u')), `'spec.upstreams[' + ${celIndex('i')} + '].hedge.upstream: "' + ${u}.hedge.upstream + '" ' + ${says(u)}`),
  };
}

export const PolicySpecSchema = Type.Object(
  {
    podSelector: Type.Optional(labelSelector),
    defaults: Type.Optional(SettingsSchema),
    upstreams: Type.Array(UpstreamSchema, {
      minItems: 1,
      maxItems: 32,
      description: 'Model APIs, 1 to 32, with unique names.',
      'x-kubernetes-list-type': 'map',
      'x-kubernetes-list-map-keys': ['name'],
    }),
    priorities: PrioritiesSchema,
    budget: budget('all upstreams of the policy together'),
    slo: Type.Object(
      {
        window: duration('The rolling window over which each sidecar measures its SLIs, as /status and the policy\'s status report them (1m to 24h; longer compliance windows are Prometheus\' job, from breakwater_sli_events_total).', { default: '1h' }),
        availability: Type.Object(
          { objective: objective('Share of requests answered without failing the app (by any tier but the static message); requests the app or the policy refused (4xx, context-length, content-filter, guards, budgets) and requests the app cancelled do not count.') },
          { additionalProperties: false, default: {}, description: 'The availability SLO.' },
        ),
        timeToFirstToken: Type.Object(
          {
            threshold: duration('A streamed answer whose first content event reaches the app within this is good.', { default: '2s' }),
            objective: objective('Share of successful streamed answers whose first token came within threshold.'),
          },
          { additionalProperties: false, default: {}, description: 'The time-to-first-token SLO, over streamed answers.' },
        ),
      },
      {
        additionalProperties: false,
        default: {},
        description: 'Service level objectives (opt-in): the sidecar exports SLI counters, objectives and burn rates; the controller writes the policy\'s SLIs over the window and a condition SLOMet into its status.',
        ...cel({ rule: `!has(self.window) || !${celDuration('self.window')} || (duration(self.window) >= duration('1m') && duration(self.window) <= duration('24h'))`, message: 'slo.window must be between 1m and 24h' }),
      },
    ),
    degradation: Type.Object(
      {
        window: duration('Rolling window for error rate and queue depth.', { default: '60s' }),
        degraded: Type.Object(
          {
            errorRate: Type.Integer({ minimum: 0, maximum: 100, default: 5, description: 'Error rate (%) that enters degraded mode.' }),
            queueDepth: Type.Integer({ minimum: 0, default: 100, description: 'Queued requests that enter degraded mode.' }),
            maxTokens: Type.Integer({ minimum: 1, default: 256, description: 'max_tokens clamp in degraded mode.' }),
            temperature: Type.Number({ minimum: 0, maximum: 2, default: 0, description: 'temperature set in degraded mode.' }),
          },
          { additionalProperties: false, default: {}, description: 'When degraded mode starts, and what it changes in requests.' },
        ),
        emergency: Type.Object(
          {
            errorRate: Type.Integer({ minimum: 0, maximum: 100, default: 25, description: 'Error rate (%) that enters emergency mode.' }),
            serve: Type.Array(stringEnum(['cache', 'static']), { default: ['cache', 'static'], description: 'Tiers served in emergency mode.' }),
          },
          { additionalProperties: false, default: {}, description: 'When emergency mode starts, and the only tiers it answers from (upstreams are not called, for chains that have such a tier).' },
        ),
      },
      { additionalProperties: false, default: {}, description: 'Whole-sidecar modes: normal, degraded, emergency. A mode is entered when its threshold is reached, and left once the measure falls below half of it and the mode has been held for a quarter of the window; the error rate counts once the window holds 20 requests. The mode is in /status, breakwater_degradation_mode and the x-breakwater-mode header.' },
    ),
    cache: Type.Object(
      {
        ttl: duration('How long an answer stays usable.', { default: '10m' }),
        maxEntries: Type.Integer({ minimum: 0, maximum: 100000, default: 10000, description: 'Entries kept (at most 100000: the cache reserves room for all of them up front).' }),
        maxBytes: Type.String({ pattern: SIZE_PATTERN, default: '64Mi', description: 'Bytes kept.' }),
        serveFresh: Type.Boolean({ default: false, description: 'Also answer from the cache while the upstream is healthy.' }),
        redis: Type.Optional(
          Type.Object(
            {
              url: Type.String({ default: '', pattern: '^(rediss?://[^\\s]+)?$', maxLength: 2048, description: 'Shared Redis cache, redis:// or rediss:// (empty = off). A new url or a rotated password gives the sidecar a new Redis client and keeps the answers it holds.' }),
              secretRef: Type.Optional(secretRef('The Redis password')),
            },
            { additionalProperties: false, description: 'A Redis the fleet shares (opt-in), asked after the local cache with a 100 ms timeout; Redis being down never fails or slows a request.' },
          ),
        ),
      },
      { additionalProperties: false, default: {}, description: 'Response cache: the last good answer to each request, for the cache fallback tier (and serveFresh). A change of ttl, maxEntries, maxBytes or serveFresh starts an empty cache.' },
    ),
    validation: Type.Object(
      {
        json: Type.Boolean({ default: true, description: 'A JSON-mode request must get valid JSON content.' }),
        refusal: Type.Boolean({ default: false, description: 'Refusal phrases count as invalid.' }),
        emptyContent: Type.Boolean({ default: true, description: 'Empty content counts as invalid.' }),
      },
      { additionalProperties: false, default: {}, description: '200 answers that fail these count as invalid-response.' },
    ),
    faults: Type.Array(
      Type.Object(
        {
          upstream: Type.String({ pattern: DNS_LABEL_PATTERN, maxLength: 63, description: 'The upstream whose attempts the fault applies to.' }),
          percent: percent('Percentage of attempts affected, each drawn at random.'),
          delay: Type.Optional(duration('Wait this long before the attempt is sent (cut short by the request\'s total timeout).')),
          abort: Type.Optional(
            Type.Object(
              { status: Type.Integer({ minimum: 400, maximum: 599, description: 'HTTP status of the injected answer, such as 503 or 429; its failure class is that of a real one.' }) },
              {
                additionalProperties: false,
                description: 'Answer the attempt with this status, in the API\'s own error shape and marked x-breakwater-fault: abort, instead of sending it (after the delay, if one is set).',
              },
            ),
          ),
        },
        { additionalProperties: false, description: 'One fault: a delay, an abort, or both.' },
      ),
      {
        default: [],
        maxItems: 32,
        description: 'Chaos experiments: delay or abort a share of an upstream\'s attempts. Retries, fallbacks and breakers treat injected faults like real ones, so a policy can be tried out before an outage.',
      },
    ),
    inbound: Type.Object(
      {
        headersTimeout: duration('Longest an app may take to send a request\'s headers.', { default: '10s' }),
        requestTimeout: duration('Longest an app may take to send a whole request (not the answer, which may stream for long).', { default: '120s' }),
        maxConnections: Type.Integer({ minimum: 1, maximum: 65536, default: 4096, description: 'Connections the data port holds at once; past it, new ones are closed at once.' }),
      },
      { additionalProperties: false, default: {}, description: 'Limits on what apps send to the sidecar.' },
    ),
    limits: Type.Object(
      {
        maxBufferedBytes: Type.String({
          pattern: SIZE_PATTERN,
          default: '96Mi',
          description:
            'Bodies the sidecar holds in memory at once, across all requests: request bodies (while they arrive, wait for a slot, or are kept for retries) and plain answers (while they are read and written). A request that would go past it gets 503 overloaded: before its body is read when it declares its length; an answer, as soon as it would.',
        }),
      },
      { additionalProperties: false, default: {}, description: 'Caps on what the whole sidecar holds.' },
    ),
    shutdown: Type.Object(
      {
        appPreStopSleep: duration('preStop sleep injected into app containers.', { default: '5s' }),
        drainTimeout: duration('Time in-flight requests get to finish on shutdown.', { default: '30s' }),
      },
      { additionalProperties: false, default: {}, description: 'Graceful shutdown.' },
    ),
  },
  {
    additionalProperties: false,
    description: 'How the sidecar treats this pod\'s LLM traffic.',
    ...cel(
      tierRule(
        otherTier,
        'spec.upstreams[].fallback[].upstream must name another upstream of this policy',
        (u, f) => `(${f}.upstream == ${u}.name ? 'is this upstream itself: an upstream cannot fall back to itself' : 'names no upstream of this policy')`,
      ),
      tierRule(
        mixedTier,
        'spec.upstreams[].fallback[].upstream must speak the same api as its upstream: a chain speaks one API',
        (u, f) => speaksOther(u, `${f}.upstream`, "a chain speaks one API (the app\\'s request and answer are in it)"),
      ),
      hedgeRule(
        otherHedge,
        'spec.upstreams[].hedge.upstream must name another upstream of this policy',
        (u) => `(${u}.hedge.upstream == ${u}.name ? 'is this upstream itself: a hedge goes to another upstream' : 'names no upstream of this policy')`,
      ),
      hedgeRule(
        mixedHedge,
        'spec.upstreams[].hedge.upstream must speak the same api as its upstream',
        (u) => speaksOther(u, `${u}.hedge.upstream`, 'a hedge speaks the API of the upstream it hedges'),
      ),
      {
        rule: '!has(self.faults) || self.faults.all(f, self.upstreams.exists(u, u.name == f.upstream))',
        message: 'spec.faults[].upstream must name an upstream of this policy',
        messageExpression: celLet('i', firstIndex('self.faults', 'f', '!self.upstreams.exists(u, u.name == f.upstream)'), `'spec.faults[' + ${celIndex('i')} + '].upstream: "' + self.faults[i].upstream + '" names no upstream of this policy'`),
      },
      { rule: `${hasCost('self')} || self.upstreams.exists(u, has(u.prices) && size(u.prices) > 0)`, message: 'spec.budget.cost needs prices on at least one upstream' },
    ),
  },
);

export type PolicySpec = Static<typeof PolicySpecSchema>;
export type UpstreamSpec = Static<typeof UpstreamSchema>;
export type Settings = Static<typeof SettingsSchema>;
export type ApiFamily = UpstreamSpec['api'];

type DeepRequired<T> = T extends readonly unknown[] ? T : T extends object ? { [K in keyof T]-?: DeepRequired<T[K]> } : T;
/** Settings with every field present: the built-in defaults overlaid by spec.defaults and the upstream's own. */
export type FullSettings = DeepRequired<Settings>;
