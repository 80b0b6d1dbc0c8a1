/**
 * One upstream: a model API the app calls through the sidecar, with its url
 * or endpoints, its API family, credential, settings (the same fields as
 * `spec.defaults`), rate limits, caps, stream recovery, health checks, hedge,
 * prices, budget, input guards and fallback chain (UpstreamSchema).
 */
import { Type } from '@sinclair/typebox';
import { API_FAMILY_NAMES } from '../api-families.js';
import { settingsProperties } from './settings.js';
import { budget, cel, DNS_LABEL_PATTERN, duration, hasCost, money, scopeField, SIZE_PATTERN, stringEnum } from './shared.js';
import { AuthSchema, FallbackTierSchema } from './upstream-parts.js';

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
        scope: scopeField('the rates'),
      },
      { additionalProperties: false, default: {}, description: 'Client-side rate limits (opt-in), for each pod or for the fleet (scope). Tokens are estimated from max_tokens and the body and corrected by the reported usage; at most ten seconds\' worth goes through at once (a pod\'s token bucket; for the fleet, a sixth of each clock minute\'s rate per ten-second slot). A request over a limit waits up to the bulkhead\'s queueTimeout (and its deadline), then gets 429 rate_limited with Retry-After.' },
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
        metricsPath: Type.Optional(
          Type.String({
            pattern: '^(/[!-~]*)?$',
            maxLength: 256,
            description: 'Path of the server\'s Prometheus metrics (/metrics for vLLM, SGLang, TGI, llama.cpp started with --metrics), read from each endpoint\'s origin on each health-check interval (so it needs path); empty = off. Requests waiting in the server\'s own queue (vllm:num_requests_waiting, sglang:num_queue_reqs, tgi_queue_size, llamacpp:requests_deferred) hold the endpoint\'s adaptive limit\'s growth and cut it gently. At most the first 1 MiB is read; a read that fails says nothing.',
          }),
        ),
        interval: duration('Time from the end of one probe to the start of the next.', { default: '5s' }),
        timeout: duration('A probe that takes longer fails.', { default: '2s' }),
        healthyThreshold: Type.Integer({ minimum: 1, maximum: 10, default: 1, description: 'Good probes in a row that make an unhealthy endpoint healthy.' }),
        unhealthyThreshold: Type.Integer({ minimum: 1, maximum: 10, default: 2, description: 'Failed probes in a row that make a healthy endpoint unhealthy.' }),
      },
      {
        additionalProperties: false,
        default: {},
        description: 'Active health checks of each endpoint (opt-in). The sidecar is ready once every first probe has answered (at most timeout); an endpoint a reload adds is tried after the healthy ones until its first probe answers.',
        ...cel({ rule: "!has(self.metricsPath) || self.metricsPath == '' || (has(self.path) && self.path != '')", message: 'healthCheck.metricsPath needs healthCheck.path: the metrics are read on the health check\'s schedule' }),
      },
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
