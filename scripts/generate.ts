/** Writes the files derived from the policy schema (see generated-files.ts). */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generatedFiles } from './generated-files.js';

const root = fileURLToPath(new URL('..', import.meta.url));
for (const [path, content] of Object.entries(generatedFiles())) {
  mkdirSync(dirname(root + path), { recursive: true });
  writeFileSync(root + path, content);
  process.stdout.write(`wrote ${path}\n`);
}
