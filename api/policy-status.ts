/**
 * The schema of a ResiliencePolicy's status, as the controller writes it through
 * the status subresource and `kubectl get/describe rp` shows it.
 */
import { Type, type Static } from '@sinclair/typebox';

const count = (description: string) => Type.Integer({ minimum: 0, description });

/** A metav1.Condition. */
export const ConditionSchema = Type.Object({
  type: Type.String({ maxLength: 316, description: 'Accepted, Ready, Degraded, SLOMet or SharedStateAvailable.' }),
  status: Type.Unsafe<'True' | 'False' | 'Unknown'>({ type: 'string', enum: ['True', 'False', 'Unknown'], description: 'True, False or Unknown.' }),
  observedGeneration: Type.Optional(Type.Integer({ minimum: 0, description: 'The generation the condition was set for.' })),
  lastTransitionTime: Type.String({ format: 'date-time', description: 'When the status last changed.' }),
  reason: Type.String({ maxLength: 1024, pattern: '^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$', description: 'Machine-readable reason in CamelCase.' }),
  message: Type.String({ maxLength: 32768, description: 'Human-readable details.' }),
});

export const PolicyStatusSchema = Type.Object(
  {
    observedGeneration: Type.Optional(Type.Integer({ minimum: 0, description: 'The spec generation this status describes.' })),
    observedAt: Type.Optional(
      Type.String({
        maxLength: 64,
        description:
          'When a controller last computed this status (RFC 3339). Refreshed at least every 5 minutes while a controller runs: an older time means none is watching (after helm uninstall, say), and the rest of the status is as it was then.',
      }),
    ),
    conditions: Type.Optional(
      Type.Array(ConditionSchema, {
        description: 'Accepted (spec valid, references resolvable), Ready (every targeted pod acknowledged this generation), Degraded (breakers open or pods degraded), SLOMet (every SLO the spec sets is met over its window; Unknown without traffic), SharedStateAvailable (with spec.sharedState: every reporting pod reaches the shared store; False while some spend a local share of the fleet\'s limits; Unknown before any reports).',
        'x-kubernetes-list-type': 'map',
        'x-kubernetes-list-map-keys': ['type'],
      }),
    ),
    pods: Type.Optional(
      Type.Object(
        {
          targeted: count('Pods this policy applies to.'),
          synced: count('Targeted pods whose sidecar acknowledged the current generation.'),
          withOpenBreaker: count('Targeted pods with at least one open circuit breaker.'),
        },
        { description: 'Pods this policy reaches.' },
      ),
    ),
    upstreams: Type.Optional(
      Type.Array(
        Type.Object({
          name: Type.String({ maxLength: 63, description: 'Upstream name.' }),
          breakers: Type.Object(
            { closed: count('Closed breakers.'), halfOpen: count('Half-open breakers.'), open: count('Open breakers.') },
            { description: 'Breakers of this upstream across targeted pods.' },
          ),
          lastTransitionTime: Type.Optional(Type.String({ format: 'date-time', description: 'Last breaker transition seen.' })),
          concurrency: Type.Optional(
            Type.Object(
              {
                mode: Type.Unsafe<'adaptive' | 'fixed'>({ type: 'string', enum: ['adaptive', 'fixed'], description: 'adaptive: each pod learns the limit from the provider\'s answers, within min and max; fixed: it is bulkhead.maxConcurrent.' }),
                min: count('The least the limit may be (the fixed limit, in mode fixed).'),
                max: count('The most the limit may be (the fixed limit, in mode fixed).'),
                limits: Type.Object(
                  { lowest: count('The lowest limit in force on a pod.'), median: count('The median of the pods\' limits.'), highest: count('The highest limit in force on a pod.') },
                  { description: 'Requests each pod lets in flight to this upstream at once now, as of its last report (at most about 30 s old).' },
                ),
                pods: count('Targeted pods that reported this upstream\'s limit.'),
              },
              { description: 'The concurrency limit (bulkhead) of this upstream across targeted pods; mode, min and max as most of them report them.' },
            ),
          ),
        }),
        { description: 'Breaker counts and concurrency limits per upstream.', 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['name'] },
      ),
    ),
    slo: Type.Optional(
      Type.Object(
        {
          window: Type.String({ maxLength: 32, description: 'The window the SLIs are measured over (spec.slo.window).' }),
          slis: Type.Array(
            Type.Object({
              name: Type.Unsafe<'availability' | 'timeToFirstToken'>({ type: 'string', enum: ['availability', 'timeToFirstToken'], description: 'availability or timeToFirstToken.' }),
              objective: Type.String({ maxLength: 16, description: 'The objective, in percent.' }),
              actual: Type.String({ maxLength: 16, description: 'Good events over all events in the window, in percent with 3 decimals; empty without events.' }),
              good: count('Good events in the window, across targeted pods.'),
              total: count('All events in the window, across targeted pods.'),
            }),
            { description: 'Each tracked SLI.', 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['name'] },
          ),
        },
        { description: 'The policy\'s SLIs over its window, combined from the sidecars\' reports, no pod weighing more than all the others together (pods that have gone take their counts with them).' },
      ),
    ),
    spend: Type.Optional(
      Type.String({ maxLength: 64, description: 'For kubectl get: the fleet\'s spend against its limit in the current window, of the policy\'s budget kept for the fleet (else the first upstream\'s), e.g. tokens:1.2M/2M or cost:9.5/10, whichever is the larger share of its limit.' }),
    ),
    budgets: Type.Optional(
      Type.Array(
        Type.Object({
          scope: Type.Unsafe<'policy' | 'upstream'>({ type: 'string', enum: ['policy', 'upstream'], description: 'The policy\'s budget (spec.budget) or an upstream\'s.' }),
          upstream: Type.Optional(Type.String({ maxLength: 63, description: 'The upstream, for an upstream\'s budget.' })),
          keptFor: Type.Unsafe<'fleet' | 'pod'>({ type: 'string', enum: ['fleet', 'pod'], description: 'fleet: one budget for all targeted pods, counted in the shared store; pod: each pod its own.' }),
          windowEnd: Type.String({ format: 'date-time', description: 'When the current window ends and spending starts again from zero.' }),
          tokens: Type.Object(
            { spent: count('Tokens spent in the window: by the fleet (as the pods\' reports say, their median), or by all pods together for a budget each pod keeps.'), limit: count('Tokens per window (0 = no limit); per pod for a budget each pod keeps.') },
            { description: 'Tokens spent against the limit.' },
          ),
          cost: Type.Object(
            { spent: Type.String({ maxLength: 32, description: 'Cost spent in the window, as tokens.spent.' }), limit: Type.String({ maxLength: 32, description: 'Cost per window (0 = no limit).' }) },
            { description: 'Cost spent against the limit, in the currency of the upstreams\' prices.' },
          ),
          pods: count('Targeted pods that reported this budget.'),
        }, { description: 'One budget.' }),
        { maxItems: 33, description: 'Each token and cost budget of the spec, from the sidecars\' reports; the limits are the spec\'s.' },
      ),
    ),
  },
  { description: 'What the controller observed: observedGeneration, conditions, pods, breakers, SLOs and budgets.' },
);

export type PolicyStatus = Static<typeof PolicyStatusSchema>;
export type Condition = Static<typeof ConditionSchema>;
