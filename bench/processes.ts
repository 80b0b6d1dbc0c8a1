/**
 * The processes a bench run starts: the paths under test (nginx, the floor, sidecars on the default, full
 * and logged policies, a baseline commit's sidecar, Portkey), their policies, and stopping them.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { IMAGE_NODE_OPTIONS } from './image-node-options.js';
import { NODE, ROOT, UPSTREAM } from './settings.js';
import { median, sleep, work } from './util.js';

export const children: ChildProcess[] = [];

export function start(command: string, args: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
  const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
  let err = '';
  child.stderr!.on('data', (d) => (err = (err + d).slice(-4000)));
  child.on('exit', (code) => {
    if (code && code !== 0 && !stopping) process.stderr.write(`${command} exited ${code}: ${err}\n`);
  });
  children.push(child);
  return child;
}

export async function waitFor(url: string, init: RequestInit = {}, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    try {
      const res = await fetch(url, init);
      await res.arrayBuffer();
      if (res.status < 500) return;
    } catch {
      // not up yet
    }
    if (Date.now() > end) throw new Error(`${url} did not come up`);
    await sleep(5);
  }
}

export function nginxProxy(port: number): ChildProcess {
  const file = join(work, 'nginx.conf');
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `${t}_temp_path ${work}/nginx-${t};`).join('\n  ');
  writeFileSync(
    file,
    `worker_processes 1;
daemon off;
pid ${work}/nginx.pid;
error_log ${work}/nginx.error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  ${temp}
  keepalive_requests 1000000;
  upstream model { server ${new URL(UPSTREAM).host}; keepalive 128; }
  server { listen 127.0.0.1:${port}; location / { proxy_pass http://model; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_buffering off; } }
}
`,
  );
  return start('nginx', ['-c', file]);
}

/** The bulkhead that lets one upstream hold the stream workload's 2,000 streams (the default is 32 in flight). */
export const STREAM_BULKHEAD = '{maxConcurrent: 4096, maxQueue: 128, queueTimeout: 5s}';

/** examples/policies/minimal.yaml on the bench's model server: every field at its default but the bulkhead. */
export function defaultPolicy(): string {
  const file = join(work, 'default.yaml');
  const minimal = readFileSync(join(ROOT, 'examples/policies/minimal.yaml'), 'utf8');
  writeFileSync(file, minimal.replace('https://api.openai.com', UPSTREAM).replace(/^upstreams:/m, `defaults:\n  bulkhead: ${STREAM_BULKHEAD}\nupstreams:`));
  return file;
}

/**
 * The default policy with the bulkhead's adaptive limit on (issue 31), able to open to the stream workload's
 * 2,000 streams: against `defaultPolicy()` (a fixed limit), CPU per request with the limit learnt from every attempt.
 */
export function adaptivePolicy(): string {
  const file = join(work, 'adaptive.yaml');
  writeFileSync(file, readFileSync(defaultPolicy(), 'utf8').replace(`bulkhead: ${STREAM_BULKHEAD}`, 'bulkhead: {mode: adaptive, adaptive: {max: 4096}, maxQueue: 4096, queueTimeout: 5s}'));
  return file;
}

/** examples/policies/chat-policy.yaml with every upstream on the bench's model server: guards, budget, SLOs, priorities, breakers, retries. */
export function fullPolicy(): string {
  const file = join(work, 'full.yaml');
  const chat = readFileSync(join(ROOT, 'examples/policies/chat-policy.yaml'), 'utf8');
  writeFileSync(file, chat.replace(/url: \S+/g, `url: ${UPSTREAM}`).replace(/bulkhead: \{[^}]*\}/, `bulkhead: ${STREAM_BULKHEAD}`));
  return file;
}

export function startBreakwater(policy: string, port: number, cli = join(ROOT, 'dist/cli.js'), env: NodeJS.ProcessEnv = {}): ChildProcess {
  return start(NODE, [...IMAGE_NODE_OPTIONS, cli, 'sidecar', '--policy', policy, '--listen', `127.0.0.1:${port}`, '--admin', `127.0.0.1:${port + 100}`], env);
}

/** Builds the sidecar of git ref `ref` (with this checkout's node_modules); returns its cli.js. */
export function buildBaseline(ref: string): string {
  const dir = join(work, 'baseline');
  const archive = spawnSync('git', ['archive', '--format=tar', ref], { cwd: ROOT, maxBuffer: 1 << 30 });
  if (archive.status !== 0) throw new Error(`git archive ${ref}: ${archive.stderr}`);
  spawnSync('mkdir', ['-p', dir]);
  spawnSync('tar', ['-x', '-C', dir], { input: archive.stdout });
  spawnSync('ln', ['-s', join(ROOT, 'node_modules'), join(dir, 'node_modules')]);
  const tsc = spawnSync(NODE, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], { cwd: dir, encoding: 'utf8' });
  if (tsc.status !== 0) throw new Error(`building ${ref}: ${tsc.stdout}`);
  return join(dir, 'dist/cli.js');
}

/** Median time from spawn to /readyz answering 200, over several starts. */
export async function timeToReady(policy: string, runs = 7): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const started = performance.now();
    const child = startBreakwater(policy, 18009);
    await waitFor('http://127.0.0.1:18109/readyz');
    times.push(performance.now() - started);
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
  }
  return median(times);
}

let stopping = false;
export function stopAll(): void {
  stopping = true;
  // SIGTERM: nginx's master then stops its worker too (SIGKILL would orphan it).
  for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
}
process.on('exit', stopAll);

export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
  children.splice(children.indexOf(child), 1);
}
