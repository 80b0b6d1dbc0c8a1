/**
 * The schema of a ResiliencePolicy's status, as the controller writes it through
 * the status subresource and `kubectl get/describe rp` shows it.
 */
import { Type, type Static } from '@sinclair/typebox';

const count = (description: string) => Type.Integer({ minimum: 0, description });

/** A metav1.Condition. */
export const ConditionSchema = Type.Object({
  type: Type.String({ maxLength: 316, description: 'Accepted, Ready or Degraded.' }),
  status: Type.Unsafe<'True' | 'False' | 'Unknown'>({ type: 'string', enum: ['True', 'False', 'Unknown'], description: 'True, False or Unknown.' }),
  observedGeneration: Type.Optional(Type.Integer({ minimum: 0, description: 'The generation the condition was set for.' })),
  lastTransitionTime: Type.String({ format: 'date-time', description: 'When the status last changed.' }),
  reason: Type.String({ maxLength: 1024, pattern: '^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$', description: 'Machine-readable reason in CamelCase.' }),
  message: Type.String({ maxLength: 32768, description: 'Human-readable details.' }),
});

export const PolicyStatusSchema = Type.Object(
  {
    observedGeneration: Type.Optional(Type.Integer({ minimum: 0, description: 'The spec generation this status describes.' })),
    conditions: Type.Optional(
      Type.Array(ConditionSchema, {
        description: 'Accepted (spec valid, references resolvable), Ready (every targeted pod acknowledged this generation), Degraded (breakers open or pods degraded).',
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
  },
  { description: 'What the controller observed: observedGeneration, conditions, pods and breakers.' },
);

export type PolicyStatus = Static<typeof PolicyStatusSchema>;
export type Condition = Static<typeof ConditionSchema>;
