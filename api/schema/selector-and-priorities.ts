/**
 * Which pods a policy is for and how their requests queue: the label
 * selector of `spec.podSelector`, and the bulkhead priority classes of
 * `spec.priorities` (PrioritiesSchema) with their built-in three.
 */
import { Type } from '@sinclair/typebox';
import { cel, DNS_LABEL_PATTERN, stringEnum } from './shared.js';

export const labelSelector = Type.Object(
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
