/**
 * The ResiliencePolicy CustomResourceDefinition, derived from the schema: the
 * JSON Schema TypeBox produces is rewritten into a Kubernetes structural schema
 * (no additionalProperties:false or uniqueItems, maps as additionalProperties,
 * defaulted fields not required) with the CEL rules, printer columns, short
 * name, category and status subresource. Defaults are not written into the
 * CRD: the API server stores what the user wrote, and the product applies the
 * defaults of its release (a changed default reaches existing policies); each
 * field's description says its default.
 */
import { stringify } from 'yaml';
import { INHERITED_DEFAULT, PolicySpecSchema } from '../api/policy-schema.js';
import { PolicyStatusSchema } from '../api/policy-status.js';

type Json = Record<string, unknown>;

/** Keywords a structural schema may carry (everything else is dropped). */
const KEPT = new Set([
  'type', 'description', 'properties', 'required', 'items', 'enum', 'pattern', 'format',
  'minimum', 'maximum', 'minItems', 'maxItems', 'minLength', 'maxLength',
  'x-kubernetes-validations', 'x-kubernetes-list-type', 'x-kubernetes-list-map-keys',
]);

function structural(schema: Json): Json {
  const out: Json = {};
  for (const [key, value] of Object.entries(schema)) if (KEPT.has(key)) out[key] = value;
  if (schema[INHERITED_DEFAULT] !== undefined && typeof out.description === 'string') {
    out.description = `${out.description} Falls back to spec.defaults.`;
  }
  const shown = schema.default === undefined ? undefined : JSON.stringify(schema.default);
  if (shown !== undefined && shown !== '{}' && shown.length <= 200 && typeof out.description === 'string' && !out.description.includes('Default:')) {
    out.description = `${out.description} Default: ${shown}.`;
  }
  if (schema.patternProperties) {
    out.additionalProperties = structural(Object.values(schema.patternProperties as Record<string, Json>)[0]!);
  }
  if (schema.properties) {
    const props = schema.properties as Record<string, Json>;
    out.properties = Object.fromEntries(Object.entries(props).map(([k, v]) => [k, structural(v)]));
    // A defaulted field is filled in by the API server, so it is never required of the user.
    const required = ((schema.required as string[] | undefined) ?? []).filter((k) => props[k]!.default === undefined);
    if (required.length > 0) out.required = required;
    else delete out.required;
  }
  if (schema.items) {
    const items = structural(schema.items as Json);
    out.items = items;
    if (schema.uniqueItems && items.type !== 'object' && !out['x-kubernetes-list-type']) out['x-kubernetes-list-type'] = 'set';
  }
  return out;
}

const column = (name: string, jsonPath: string, type: string, description: string) => ({ name, type, jsonPath, description });

export function crdYaml(): string {
  const crd = {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: 'resiliencepolicies.breakwater.dev' },
    spec: {
      group: 'breakwater.dev',
      names: { kind: 'ResiliencePolicy', listKind: 'ResiliencePolicyList', plural: 'resiliencepolicies', singular: 'resiliencepolicy', shortNames: ['rp'], categories: ['breakwater'] },
      scope: 'Namespaced',
      versions: [
        {
          name: 'v1alpha1',
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: [
            column('Targeted', '.status.pods.targeted', 'integer', 'Pods this policy applies to'),
            column('Synced', '.status.pods.synced', 'integer', 'Pods whose sidecar runs the current generation'),
            column('Open', '.status.pods.withOpenBreaker', 'integer', 'Pods with an open circuit breaker'),
            column('Ready', '.status.conditions[?(@.type=="Ready")].status', 'string', 'The policy is accepted and every targeted pod is synced'),
            column('Accepted', '.status.conditions[?(@.type=="Accepted")].status', 'string', 'The spec is valid and the Secrets it names give usable credentials'),
            column('Spend', '.status.spend', 'string', 'The fleet\'s spend against its budget in the current window'),
            column('Observed', '.status.observedAt', 'date', 'When a controller last computed this status: an old time means none is watching'),
            column('Age', '.metadata.creationTimestamp', 'date', 'Time since creation'),
          ],
          schema: {
            openAPIV3Schema: {
              type: 'object',
              description: 'ResiliencePolicy: how Breakwater sidecars treat the LLM traffic of the pods it selects (circuit breakers, retries, timeouts, bulkheads, fallbacks).',
              required: ['spec'],
              properties: {
                apiVersion: { type: 'string', description: 'APIVersion of this object: breakwater.dev/v1alpha1.' },
                kind: { type: 'string', description: 'Kind of this object: ResiliencePolicy.' },
                metadata: { type: 'object' },
                spec: structural(PolicySpecSchema as unknown as Json),
                status: structural(PolicyStatusSchema as unknown as Json),
              },
            },
          },
        },
      ],
    },
  };
  return `# Generated by \`npm run generate\` from api/policy-schema.ts and api/policy-status.ts. Do not edit.\n${stringify(crd, { lineWidth: 0, aliasDuplicateObjects: false })}`;
}
