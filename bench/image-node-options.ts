/** The V8 flags the image runs every subcommand with (Dockerfile ENV NODE_OPTIONS), so benchmarks measure what is deployed. */
import { readFileSync } from 'node:fs';

export const IMAGE_NODE_OPTIONS = /ENV NODE_OPTIONS="([^"]*)"/.exec(readFileSync(new URL('../Dockerfile', import.meta.url), 'utf8'))![1]!.split(' ');
