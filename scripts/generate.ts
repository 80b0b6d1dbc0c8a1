/** Writes the files derived from the policy schema (see generated-files.ts). */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { generatedFiles } from './generated-files.js';

const root = fileURLToPath(new URL('..', import.meta.url));
for (const [path, content] of Object.entries(generatedFiles())) {
  writeFileSync(root + path, content);
  process.stdout.write(`wrote ${path}\n`);
}
