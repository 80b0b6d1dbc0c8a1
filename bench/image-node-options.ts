/**
 * How the image runs Node, so benchmarks measure what is deployed: the V8 flags every subcommand gets
 * (Dockerfile ENV NODE_OPTIONS), and the flags the chart adds for the controller (controller.nodeFlags).
 */
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';

export const IMAGE_NODE_OPTIONS = /ENV NODE_OPTIONS="([^"]*)"/.exec(readFileSync(new URL('../Dockerfile', import.meta.url), 'utf8'))![1]!.split(' ');

export const CONTROLLER_NODE_FLAGS: string[] = parse(readFileSync(new URL('../charts/breakwater/values.yaml', import.meta.url), 'utf8')).controller.nodeFlags ?? [];
