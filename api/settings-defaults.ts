/**
 * The merge that layers built-in defaults ← spec.defaults ← an upstream's own
 * settings. The built-in values are generated from the schema's
 * `x-breakwater-default` annotations (scripts/generated-files.ts).
 */
import { BUILTIN_SETTINGS } from './generated/builtin-settings.js';
import type { FullSettings, Settings } from './policy-schema.js';

export { BUILTIN_SETTINGS };

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
