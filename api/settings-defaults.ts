/**
 * Built-in defaults of the inheritable settings, read off the schema's
 * `x-breakwater-default` annotations, and the merge that layers
 * built-in ← spec.defaults ← upstream's own.
 */
import type { TSchema } from '@sinclair/typebox';
import { INHERITED_DEFAULT, SettingsSchema, type FullSettings, type Settings } from './policy-schema.js';

function collectDefaults(schema: TSchema): unknown {
  if (INHERITED_DEFAULT in schema) return structuredClone(schema[INHERITED_DEFAULT]);
  if (schema.type !== 'object' || !schema.properties) return undefined;
  const out: Record<string, unknown> = {};
  for (const [key, child] of Object.entries(schema.properties as Record<string, TSchema>)) {
    const value = collectDefaults(child);
    if (value !== undefined) out[key] = value;
  }
  return out;
}

/** Every inheritable setting at its built-in value. */
export const BUILTIN_SETTINGS = collectDefaults(SettingsSchema) as FullSettings;

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Deep merge where later layers win; arrays are replaced, not concatenated. */
function overlay(base: unknown, top: unknown): unknown {
  if (top === undefined) return structuredClone(base);
  if (!isPlainObject(base) || !isPlainObject(top)) return structuredClone(top);
  const out: Record<string, unknown> = { ...(structuredClone(base) as Record<string, unknown>) };
  for (const [key, value] of Object.entries(top)) out[key] = overlay(base[key], value);
  return out;
}

/** The settings in force for one upstream. */
export function mergeSettings(policyDefaults: Settings | undefined, own: Settings): FullSettings {
  return overlay(overlay(BUILTIN_SETTINGS, policyDefaults), own) as FullSettings;
}
