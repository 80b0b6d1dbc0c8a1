/**
 * The schema of a ResiliencePolicy's status, as the controller writes it through
 * the status subresource and `kubectl get/describe rp` shows it.
 */
import { Type, type Static } from '@sinclair/typebox';

const count = (description: string) => Type.Integer({ minimum: 0, description });

/** A metav1.Condition. */
export const ConditionSchema = Type.Object({
  type: Type.String({ maxLength: 316, description: 'Accepted, Ready, Degraded or SLOMet.' }),
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
        description: 'Accepted (spec valid, references resolvable), Ready (every targeted pod acknowledged this generation), Degraded (breakers open or pods degraded), SLOMet (every SLO the spec sets is met over its window; Unknown without traffic).',
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
        }),
        { description: 'Breaker counts per upstream.', 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['name'] },
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
  },
  { description: 'What the controller observed: observedGeneration, conditions, pods, breakers and SLOs.' },
);

export type PolicyStatus = Static<typeof PolicyStatusSchema>;
export type Condition = Static<typeof ConditionSchema>;
