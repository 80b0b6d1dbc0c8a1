/**
 * The local policy file: read (YAML or JSON, a bare spec or a whole
 * ResiliencePolicy), validated, compiled; and watched, so that a valid edit
 * takes effect at once and an invalid one leaves the last good config in force.
 */
import { readFileSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { parse } from 'yaml';
import { formatProblems, hashSpec, validatePolicy } from '../../api/index.js';
import { compileConfig } from './compile-config.js';
import type { RuntimeConfig } from './runtime-config.js';

export type LoadResult = { ok: true; config: RuntimeConfig } | { ok: false; error: string };

/** Validates and compiles policy text; `source` names it in messages. */
export function loadPolicyText(text: string, source: string, origin: 'file' | 'demo' = 'file'): LoadResult {
  let document: unknown;
  try {
    document = parse(text);
  } catch (err) {
    return { ok: false, error: `${source}: not valid YAML or JSON: ${(err as Error).message}` };
  }
  const verdict = validatePolicy(document);
  if (!verdict.ok) return { ok: false, error: `${source}: invalid policy:\n${formatProblems(verdict.problems)}` };
  try {
    const version = {
      source: origin,
      // namespace/name as the controller names a policy: its fleet counts and shared answers are its own.
      policy: verdict.metadata.name === undefined ? basename(source) : [verdict.metadata.namespace, verdict.metadata.name].filter(Boolean).join('/'),
      generation: verdict.metadata.generation ?? 0,
      hash: hashSpec(verdict.spec),
    };
    return { ok: true, config: compileConfig(verdict.spec, version) };
  } catch (err) {
    return { ok: false, error: `${source}: ${(err as Error).message}` };
  }
}

export function loadPolicyFile(path: string): LoadResult {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    return { ok: false, error: `cannot read policy file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` };
  }
  return loadPolicyText(text, path);
}

/**
 * Calls `onResult` after each change of the file. The directory is watched, not
 * the file, so editors' rename-on-save and Kubernetes ConfigMap symlink swaps
 * (entries named `..data`, `..2026_…`) are seen; changes to other files in the
 * directory are ignored, so a busy neighbour cannot hold an edit back.
 */
export function watchPolicyFile(path: string, onResult: (result: LoadResult) => void, debounceMs = 100): FSWatcher {
  const file = resolve(path);
  let timer: NodeJS.Timeout | undefined;
  let lastText: string | undefined;
  try {
    lastText = readFileSync(file, 'utf8');
  } catch {
    lastText = undefined;
  }
  const name = basename(file);
  const watcher = watch(dirname(file), (_event, changed) => {
    if (changed && changed !== name && !changed.startsWith('..')) return;
    clearTimeout(timer);
    timer = setTimeout(() => {
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch {
        return; // mid-swap; the next event brings the new file
      }
      if (text === lastText) return;
      lastText = text;
      onResult(loadPolicyText(text, path));
    }, debounceMs);
  });
  watcher.on('close', () => clearTimeout(timer));
  return watcher;
}
