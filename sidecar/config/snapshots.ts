/**
 * A snapshot from the controller (api/protocol.ts) as the sidecar takes it:
 * validated and compiled into a config, or the reason it cannot be; what
 * makes two snapshots the same one; and the last good one, kept on disk (an
 * emptyDir) so that a restarted sidecar enforces its policy before the
 * controller answers, read as distrustfully as the stream.
 */
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { canonicalJson, formatProblems, readSnapshot, validatePolicy, type UncheckedSnapshot } from '../../api/index.js';
import { KeptFileRefused, readKeptFile, writeKeptFile } from '../kept-file.js';
import { compileConfig } from './compile-config.js';
import type { RuntimeConfig } from './runtime-config.js';

/**
 * A snapshot is a policy's spec, which the API server keeps under 1.5 MiB: an event (or the copy on disk)
 * longer than this is not one, and an unfinished event is not held past it.
 */
export const MAX_SNAPSHOT_CHARS = 4 << 20;

export function compileSnapshot(snapshot: UncheckedSnapshot): { config: RuntimeConfig } | { error: string } {
  const verdict = validatePolicy(snapshot.spec);
  if (!verdict.ok) return { error: formatProblems(verdict.problems) };
  try {
    return { config: compileConfig(verdict.spec, snapshot.version, snapshot) };
  } catch (err) {
    return { error: (err as Error).message };
  }
}

/** What makes two snapshots the same one: version, spec and credentials, whatever their keys' order. */
export const snapshotIdentity = (snapshot: UncheckedSnapshot) => createHash('sha256').update(canonicalJson(snapshot)).digest('base64');

/** The snapshot kept in `file`, or undefined (none, unreadable, refused or not a snapshot: each logged but the first). */
export function readKeptSnapshot(file: string, log: Logger): UncheckedSnapshot | undefined {
  let text: string | undefined;
  try {
    text = readKeptFile(file, MAX_SNAPSHOT_CHARS);
  } catch (err) {
    if (err instanceof KeptFileRefused) log.warn({ file }, `ignoring the config kept on disk: ${err.message}`);
    else if ((err as NodeJS.ErrnoException).code !== 'ENOENT') log.warn({ err: (err as Error).message }, 'ignoring unreadable config cache');
  }
  const read = text === undefined ? undefined : readSnapshot(text);
  if (read && !read.ok) log.warn({ error: read.error }, 'ignoring the config kept on disk: not a snapshot');
  return read?.ok ? read.snapshot : undefined;
}

/** Keeps `snapshot` in `file`; a failure is logged, never thrown. */
export function keepSnapshot(file: string, snapshot: UncheckedSnapshot, log: Logger): void {
  try {
    writeKeptFile(file, JSON.stringify(snapshot));
  } catch (err) {
    log.warn({ err: (err as Error).message }, 'could not keep the config on disk');
  }
}
