/**
 * schema/ — the one schema of a ResiliencePolicy spec, by area, one module
 * each: the shared pieces every area builds with (shared.ts: patterns, CEL
 * helpers, field makers, budget, failure classes), the settings that
 * `spec.defaults` and each upstream take (settings.ts), an upstream
 * (upstream.ts) and the parts of it that stand alone (upstream-parts.ts:
 * secretRef, auth, a fallback tier), the pod selector and priority classes
 * (selector-and-priorities.ts), OpenTelemetry tracing (tracing.ts), and the
 * spec's cross-field CEL rules (spec-rules.ts). This file assembles them into PolicySpecSchema, with the
 * spec-wide sections (SLO, degradation, cache, validation, faults, inbound,
 * limits, shutdown), and gives the types derived from it. Importers use
 * ../policy-schema.ts, which re-exports the public names.
 */
import { Type, type Static } from '@sinclair/typebox';
import { labelSelector, PrioritiesSchema } from './selector-and-priorities.js';
import { SettingsSchema } from './settings.js';
import { budget, cel, celDuration, DNS_LABEL_PATTERN, duration, objective, percent, SIZE_PATTERN, stringEnum } from './shared.js';
import { SPEC_RULES } from './spec-rules.js';
import { TracingSchema } from './tracing.js';
import { secretRef } from './upstream-parts.js';
import { UpstreamSchema } from './upstream.js';

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
    sharedState: Type.Optional(
      Type.Object(
        {
          redis: Type.Object(
            {
              url: Type.String({ minLength: 1, pattern: '^rediss?://[^\\s]+$', maxLength: 2048, description: 'redis:// or rediss:// (TLS) URL of a Redis or Valkey, with an optional database number (/0). A new url or a rotated password gives the sidecar a new client; what the fleet counted stays in Redis.' }),
              secretRef: Type.Optional(secretRef('The Redis password')),
            },
            { additionalProperties: false, description: 'The Redis (or Valkey) that holds the fleet\'s counts.' },
          ),
        },
        {
          additionalProperties: false,
          description:
            'A store the pods the policy selects share (opt-in), named once: with it, budgets and rate limits are the fleet\'s by default (their scope), and cache.shared puts the answer cache in it too. Sidecars take leases, slices of the fleet\'s limits reserved atomically in Redis, and spend them locally: no request waits on Redis while its pod holds a lease, and none waits more than 50 ms when Redis is down or hangs; each sidecar then spends a local share of what is left (see the README\'s budgets section), and its spending is added when Redis is back. Keys are namespaced by the policy\'s namespace and name.',
        },
      ),
    ),
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
            queueDepth: Type.Integer({ minimum: 0, default: 100, description: 'Queued requests that enter degraded mode: those waiting behind a fixed bulkhead limit, or behind an adaptive one that is at its max or that the provider has refused (probing). A queue behind an adaptive limit still opening (slow start) is a burst on its way in, not overload, and does not count.' }),
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
        shared: Type.Boolean({ default: false, description: 'Share answers across the fleet in the Redis of spec.sharedState (as cache.redis does with a Redis of its own; not both).' }),
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
    tracing: TracingSchema,
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
    ...cel(...SPEC_RULES),
  },
);

export type PolicySpec = Static<typeof PolicySpecSchema>;
export type UpstreamSpec = Static<typeof UpstreamSchema>;
export type Settings = Static<typeof SettingsSchema>;
export type ApiFamily = UpstreamSpec['api'];

type DeepRequired<T> = T extends readonly unknown[] ? T : T extends object ? { [K in keyof T]-?: DeepRequired<T[K]> } : T;
/** Settings with every field present: the built-in defaults overlaid by spec.defaults and the upstream's own. */
export type FullSettings = DeepRequired<Settings>;
