/**
 * Files the sidecar keeps for itself across restarts (its kept state, the last
 * good config), in a directory that other containers of the pod may share.
 * Neither reading nor writing one may block the event loop or go anywhere but
 * that file:
 * - a read opens the path without blocking (a FIFO would otherwise wait for a
 *   writer forever), then takes only a regular file, and only up to a size cap
 *   (a character device such as /dev/zero never ends);
 * - a write goes to a new temporary file beside it, created exclusively (so a
 *   link or FIFO planted under that name is never opened), and is renamed over
 *   the path, which replaces whatever was there without opening it.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, constants, fstatSync, openSync, readSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** A kept file that is there but is not read: not a regular file, or over the size cap. */
export class KeptFileRefused extends Error {
  override readonly name = 'KeptFileRefused';
}

/** Opening a FIFO for reading with this returns at once instead of waiting for a writer (0 where the platform has none). */
const NONBLOCK = constants.O_NONBLOCK ?? 0;

/**
 * The text of the regular file at `path`, at most `maxBytes` long. Throws KeptFileRefused for
 * anything else that is there, and the file system's error (ENOENT when there is nothing) when it cannot be opened.
 */
export function readKeptFile(path: string, maxBytes: number): string {
  const fd = openSync(path, constants.O_RDONLY | NONBLOCK);
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw new KeptFileRefused('not a regular file');
    if (stat.size > maxBytes) throw new KeptFileRefused(`larger than ${maxBytes} bytes`);
    // One byte more than fstat said: filling it means the file grew while it was read.
    const buffer = Buffer.allocUnsafe(stat.size + 1);
    let length = 0;
    for (let n; length < buffer.length && (n = readSync(fd, buffer, length, buffer.length - length, null)) > 0; ) length += n;
    if (length === buffer.length) throw new KeptFileRefused('it changed while it was read');
    return buffer.toString('utf8', 0, length);
  } finally {
    closeSync(fd);
  }
}

/** Replaces the file at `path` with `text`, atomically (see the module's comment). Throws the file system's error. */
export function writeKeptFile(path: string, text: string): void {
  const temporary = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const fd = openSync(temporary, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  try {
    try {
      writeFileSync(fd, text);
    } finally {
      closeSync(fd);
    }
    renameSync(temporary, path);
  } catch (err) {
    try {
      unlinkSync(temporary);
    } catch {
      // already gone
    }
    throw err;
  }
}
