/**
 * docs/policy-reference.md, derived from the policy schema (api/policy-schema.ts)
 * like the CRD: every field of a ResiliencePolicy spec with its type, default,
 * range and meaning, the meaning being the schema's description (the text
 * `kubectl explain` shows). `npm run generate` writes it (scripts/generated-files.ts);
 * a test fails when it is stale, so the reference cannot drift from the schema.
 * To change what it says, change the schema's descriptions.
 */
import type { TSchema } from '@sinclair/typebox';
import { DNS_LABEL_PATTERN, DURATION_PATTERN, INHERITED_DEFAULT, PolicySpecSchema, SIZE_PATTERN } from '../api/policy-schema.js';
import { SECRET_KEY_PATTERN, SECRET_NAME_PATTERN } from '../api/secret-names.js';
import { MAX_DURATION, MAX_DURATION_CHARS, MONEY_PATTERN, OBJECTIVE_PATTERN } from '../api/units.js';

type Json = Record<string, any>;

/** The settings that spec.defaults and every upstream share: documented once, in their own section. */
const SETTINGS = ['timeouts', 'retry', 'circuitBreaker', 'bulkhead'];

/** Patterns with a name of their own (the type column says the name, not the regular expression). */
const NAMED_PATTERNS: Record<string, string> = {
  [DURATION_PATTERN]: 'duration',
  [SIZE_PATTERN]: 'size',
  [MONEY_PATTERN]: 'decimal string',
  [OBJECTIVE_PATTERN]: 'percentage string',
  [DNS_LABEL_PATTERN]: 'DNS label',
  [SECRET_NAME_PATTERN]: 'Secret name (DNS subdomain)',
  [SECRET_KEY_PATTERN]: 'Secret key (letters, digits, `-`, `_`, `.`)',
};

/** What the duration helper appends to every duration's description (the type column says it). */
const DURATION_SUFFIX = ` A duration such as 250ms, 30s, 5m, 1h (at most ${MAX_DURATION}).`;

/** A code span for any text: a fence longer than any run of backticks in it, and pipes escaped for a table cell. */
function code(text: string): string {
  const longest = Math.max(0, ...[...text.matchAll(/`+/g)].map((m) => m[0].length));
  const fence = '`'.repeat(longest + 1);
  const pad = text.startsWith('`') || text.endsWith('`') ? ' ' : '';
  return `${fence}${pad}${text}${pad}${fence}`.replaceAll('|', '\\|');
}

/** Prose for a table cell: pipes escaped, and outside code spans, `<` and `*` kept from reading as HTML or emphasis. */
function prose(text: string): string {
  return text
    .split(/(`[^`]*`)/)
    .map((part, i) => (i % 2 === 1 ? part : part.replaceAll('<', '&lt;').replaceAll('*', '\\*')))
    .join('')
    .replaceAll('|', '\\|')
    .replace(/\s*\n\s*/g, ' ');
}

/** A value as YAML flow, as a policy would write it (strings quoted where YAML would read another type). */
function flow(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(flow).join(', ')}]`;
  if (typeof value === 'object' && value !== null) return `{${Object.entries(value).map(([k, v]) => `${k}: ${flow(v)}`).join(', ')}}`;
  if (typeof value === 'string') return /^[A-Za-z][A-Za-z0-9_./-]*$|^[0-9.]+(ms|s|m|h|Ki|Mi|Gi|k|M|G)$/.test(value) && !/^(true|false|null|yes|no|on|off)$/i.test(value) ? value : `'${value.replaceAll("'", "''")}'`;
  return String(value);
}
const shown = (value: unknown) => code(flow(value));

/** Whether a field under an object inherits a built-in default (a settings group: present whether written or not). */
const inheritsDefaults = (schema: Json): boolean =>
  INHERITED_DEFAULT in schema || Object.values((schema.properties ?? {}) as Record<string, Json>).some(inheritsDefaults);

function typeOf(schema: Json): string {
  if (Array.isArray(schema.enum)) return `one of ${schema.enum.map((v: unknown) => code(String(v))).join(', ')}`;
  if (schema.type === 'string' && typeof schema.pattern === 'string') return NAMED_PATTERNS[schema.pattern] ?? 'string';
  if (schema.type === 'array') {
    const items = schema.items as Json;
    return items.type === 'object' ? 'list of objects' : `list of ${typeOf(items)}`;
  }
  if (schema.type === 'object' && schema.patternProperties) return 'map of string to string';
  return String(schema.type);
}

function rangeOf(schema: Json): string {
  const parts: string[] = [];
  const { minimum: min, maximum: max } = schema;
  if (min !== undefined && max !== undefined) parts.push(`${min}–${max}`);
  else if (min !== undefined) parts.push(`≥ ${min}`);
  else if (max !== undefined) parts.push(`≤ ${max}`);
  if (schema.type === 'string') {
    if (schema.pattern === DURATION_PATTERN) parts.push(`≤ ${MAX_DURATION}, ≤ ${MAX_DURATION_CHARS} characters`);
    else {
      if (schema.minLength === 1 && schema.maxLength !== undefined) parts.push(`1–${schema.maxLength} characters`);
      else if (schema.minLength === 1) parts.push('not empty');
      else if (schema.maxLength !== undefined) parts.push(`≤ ${schema.maxLength} characters`);
      if (typeof schema.pattern === 'string' && !(schema.pattern in NAMED_PATTERNS)) parts.push(`matches ${code(schema.pattern)}`);
    }
  }
  if (schema.type === 'array') {
    const { minItems, maxItems } = schema;
    if (minItems !== undefined && maxItems !== undefined) parts.push(`${minItems}–${maxItems} items`);
    else if (maxItems !== undefined) parts.push(`≤ ${maxItems} items`);
    else if (minItems !== undefined) parts.push(`≥ ${minItems} items`);
    const keys = schema['x-kubernetes-list-map-keys'] as string[] | undefined;
    if (keys) parts.push(`unique ${keys.map((k) => code(k)).join(', ')}`);
    else if (schema.uniqueItems) parts.push('no repeats');
    const items = schema.items as Json;
    if (items.type !== 'object') {
      const inner = rangeOf(items);
      if (inner) parts.push(`each ${inner}`);
    }
  }
  return parts.join('; ');
}

function defaultOf(schema: Json, required: boolean): string {
  if (INHERITED_DEFAULT in schema) return shown(schema[INHERITED_DEFAULT]);
  if (required) return '**required**';
  if (schema.default !== undefined && !(schema.type === 'object' && JSON.stringify(schema.default) === '{}')) return shown(schema.default);
  if (schema.type === 'object' && (schema.default !== undefined || inheritsDefaults(schema))) return '(its fields\')';
  return '—';
}

function meaningOf(schema: Json, itemsNote?: string): string {
  let text: string = schema.description ?? '';
  if (INHERITED_DEFAULT in schema) text = text.replace(` Default: ${JSON.stringify(schema[INHERITED_DEFAULT])}.`, '').replace(`Default: ${JSON.stringify(schema[INHERITED_DEFAULT])}.`, '');
  if (schema.pattern === DURATION_PATTERN) text = text.replace(DURATION_SUFFIX, '');
  const items = schema.type === 'array' ? (schema.items as Json) : undefined;
  if (items?.description && items.description !== itemsNote) text = `${text} Each item: ${items.description}`;
  const rules = [schema, items ?? {}].flatMap((s) => ((s['x-kubernetes-validations'] ?? []) as { message: string; rule: string }[]))
    // The duration bound is in the range column.
    .filter((r) => r.message !== `must be at most ${MAX_DURATION}`)
    .map((r) => ` Rule: ${r.message}.`);
  return prose(`${text.trim()}${rules.join('')}`.trim());
}

interface Row {
  path: string;
  schema: Json;
  required: boolean;
  /** Where the field is documented instead (a settings group). */
  seeAlso?: string;
}

/** The fields under `schema`, depth first, each with its path from `at`; settings groups only named when `settingsAside`. */
function rows(schema: Json, at: string, settingsAside: boolean): Row[] {
  const out: Row[] = [];
  const object = schema.type === 'array' ? (schema.items as Json) : schema;
  if (object.type !== 'object' || !object.properties) return out;
  const required = new Set<string>(object.required ?? []);
  for (const [key, child] of Object.entries(object.properties as Record<string, Json>)) {
    const path = at === '' ? key : `${at}.${key}`;
    const isRequired = required.has(key) && child.default === undefined && !(INHERITED_DEFAULT in child);
    if (settingsAside && SETTINGS.includes(key)) {
      out.push({ path, schema: child, required: false, seeAlso: `#settings-${key.toLowerCase()}` });
      continue;
    }
    out.push({ path, schema: child, required: isRequired });
    const inner = child.type === 'array' ? `${path}[]` : path;
    out.push(...rows(child, inner, settingsAside));
  }
  return out;
}

function table(list: Row[], itemsNote: string): string {
  const lines = ['| field | type | default | range | meaning |', '|---|---|---|---|---|'];
  for (const row of list) {
    // A field described in a section of its own: its short description, and the link.
    const meaning = row.seeAlso ? `${prose(row.schema.description ?? '')} See [${row.path.split('.').pop()}](${row.seeAlso}).` : meaningOf(row.schema, itemsNote);
    const def = defaultOf(row.schema, row.required);
    lines.push(`| ${code(row.path)} | ${typeOf(row.schema)} | ${def} | ${rangeOf(row.schema)} | ${meaning} |`);
  }
  return lines.join('\n');
}

const anchor = (id: string) => `<a id="${id}"></a>`;

export function policyReferenceMarkdown(): string {
  const spec = PolicySpecSchema as unknown as Json;
  const props = spec.properties as Record<string, Json>;
  const upstream = (props.upstreams!.items as Json).properties as Record<string, Json>;
  // The failure classes' description, said once below rather than in every list of them.
  const failureClassNote: string = (upstream.retry!.properties.on.items as Json).description;
  const sections: string[] = [];
  const toc: string[] = [];
  const section = (id: string, title: string, intro: string, body: string) => {
    toc.push(`- [${title}](#${id})`);
    sections.push(`${anchor(id)}\n## ${title}\n\n${intro}${intro ? '\n\n' : ''}${body}`);
  };

  section('spec', '`spec`', meaningOf(spec), table(
    Object.entries(props).map(([key, child]) => ({ path: key, schema: child, required: (spec.required ?? []).includes(key) && child.default === undefined, seeAlso: `#spec-${key.toLowerCase()}` })),
    failureClassNote,
  ));
  for (const [key, child] of Object.entries(props)) {
    const isList = child.type === 'array';
    const title = `\`spec.${key}${isList ? '[]' : ''}\``;
    if (key === 'defaults') {
      section('spec-defaults', title, `${prose(child.description ?? '')} The same four groups an upstream may set; each is described once, in [Settings](#settings).`, table(rows(child, '', true), failureClassNote));
      continue;
    }
    const intro = meaningOf(child, failureClassNote);
    section(`spec-${key.toLowerCase()}`, title, intro, table(rows(child, '', true), failureClassNote));
  }
  const settings = SETTINGS.map((k) => [k, upstream[k]!] as const);
  toc.push('- [Settings](#settings)');
  sections.push(
    `${anchor('settings')}\n## Settings\n\nThe groups ${SETTINGS.map((k) => code(k)).join(', ')} may be set in \`spec.defaults\` and on each upstream (\`spec.upstreams[]\`). For each field, an upstream's own value wins over \`spec.defaults\`, which wins over the built-in default shown here; a field left out falls back to the next layer.`,
  );
  for (const [key, child] of settings) {
    toc.push(`  - [\`${key}\`](#settings-${key.toLowerCase()})`);
    sections.push(`${anchor(`settings-${key.toLowerCase()}`)}\n### \`${key}\`\n\n${meaningOf(child)}\n\n${table(rows(child, key, false), failureClassNote)}`);
  }
  toc.push('- [Failure classes](#failure-classes)');
  sections.push(`${anchor('failure-classes')}\n## Failure classes\n\n${prose(failureClassNote)} A fallback tier's \`when\` also takes \`unavailable\` and \`budget-exhausted\`.`);

  return `<!-- Generated by \`npm run generate\` from api/policy-schema.ts. Do not edit: change the schema's descriptions, then run \`npm run generate\`. -->
# Policy reference

Every field of a \`ResiliencePolicy\` spec (\`breakwater.dev/v1alpha1\`): its type, its default, the values it takes and what it means. This page is generated from the schema (\`api/policy-schema.ts\`), the same source as the CRD, the validator and the built-in defaults, so \`kubectl explain rp.spec…\` and \`breakwater check-policy\` say the same. For a first policy and examples, see the [README](../README.md#a-first-policy).

- A policy file may be a whole \`ResiliencePolicy\` or its bare spec, in YAML or JSON. Unknown fields are refused, each problem named by its path (\`spec.upstreams[0].retry.attempts\`).
- A **duration** is a string such as \`250ms\`, \`30s\`, \`5m\` or \`1h30m\`: at most ${MAX_DURATION_CHARS} characters and at most \`${MAX_DURATION}\` (a timer holds at most 2^31−1 ms). A **size** is bytes, or a number with \`k\`, \`M\`, \`G\` (powers of 1000) or \`Ki\`, \`Mi\`, \`Gi\` (powers of 1024). A **decimal string** is a price or cost such as \`'2.50'\`, a **percentage string** an objective such as \`'99.9'\`.
- **default** is what applies when the field is left out; "(its fields')" means the object may be left out and each of its fields takes its own default. Defaults are not stored in the cluster: the API server keeps what was written, and each release applies its own defaults.
- A **Rule** is a check across fields, made by the API server (CEL) and by the sidecar's validator alike.

${toc.join('\n')}

${sections.join('\n\n')}
`;
}
