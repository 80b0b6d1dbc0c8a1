/**
 * The image, tested without a Docker engine: the build context that
 * .dockerignore leaves holds what the Dockerfile copies and nothing it should
 * not; and the runtime stage, rebuilt by hand (the copied sources compiled,
 * production dependencies only), runs the entrypoint's commands.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
const ignored = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));

/** .dockerignore's patterns as this file uses them: top-level names, and *.ext. */
const isIgnored = (path: string) => ignored.some((p) => (p.startsWith('*.') ? path.endsWith(p.slice(1)) : path === p || path.startsWith(`${p}/`)));
/** Sources of the build stage's COPY lines (not --from). */
const copied = [...dockerfile.matchAll(/^COPY (?!--from)(.+) \S+$/gm)].flatMap((m) => m[1]!.split(' '));
const entrypoint = JSON.parse(/^ENTRYPOINT (.+)$/m.exec(dockerfile)![1]!) as string[];
const nodeOptions = /ENV NODE_OPTIONS="([^"]*)"/.exec(dockerfile)![1]!.split(' ');

describe('container image', () => {
  const context = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard'], { cwd: ROOT, encoding: 'utf8' }).split('\n').filter(Boolean).filter((f) => !isIgnored(f));

  it('sends a build context with everything the Dockerfile copies and no tests, benchmarks or docs', () => {
    for (const source of copied) assert.ok(context.some((f) => f === source || f.startsWith(`${source}/`)), `${source} is copied but not in the build context`);
    for (const left of ['test/', 'bench/', 'node_modules/', 'examples/', 'charts/', '.git/', 'README.md']) {
      assert.ok(!context.some((f) => f.startsWith(left)), `${left} should not be in the build context`);
    }
    const unused = context.filter((f) => !copied.some((source) => f === source || f.startsWith(`${source}/`)) && !['Dockerfile', '.dockerignore', '.gitignore'].includes(f));
    assert.deepEqual(unused, [], 'the context holds only what the Dockerfile copies');
  });

  describe('runtime stage, rebuilt by hand', () => {
    let build: string;
    let app: string;
    before(() => {
      build = mkdtempSync(join(tmpdir(), 'breakwater-image-build-'));
      for (const source of copied) cpSync(join(ROOT, source), join(build, source), { recursive: true });
      symlinkSync(join(ROOT, 'node_modules'), join(build, 'node_modules')); // the build stage's npm ci
      execFileSync(process.execPath, [join(build, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], { cwd: build });
      app = mkdtempSync(join(tmpdir(), 'breakwater-image-app-'));
      cpSync(join(build, 'package.json'), join(app, 'package.json'));
      cpSync(join(build, 'package-lock.json'), join(app, 'package-lock.json'));
      cpSync(join(build, 'dist'), join(app, 'dist'), { recursive: true });
      execFileSync('npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--silent'], { cwd: app });
    });
    after(() => {
      rmSync(build, { recursive: true, force: true });
      rmSync(app, { recursive: true, force: true });
    });

    const run = (args: string[]) => [...nodeOptions, join(app, entrypoint[1]!.replace(/^\/app\//, '')), ...args];

    it('holds production dependencies only', () => {
      for (const devOnly of ['typescript', 'tsx', '@sinclair/typebox', 'openai', 'fast-check', 'node']) assert.ok(!existsSync(join(app, 'node_modules', devOnly)), devOnly);
    });

    it('runs check-policy from the built output', () => {
      const out = execFileSync(process.execPath, run(['check-policy', join(ROOT, 'examples/policies/chat-policy.yaml')]), { encoding: 'utf8' });
      assert.match(out, /valid \(upstreams: vllm, claude, ollama\)/);
    });

    it('starts the sidecar and the controller\'s command line from the built output', async () => {
      const child = spawn(process.execPath, run(['sidecar', '--demo', '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0']), { stdio: ['ignore', 'pipe', 'pipe'] });
      const listening = await new Promise<string>((resolve, reject) => {
        let out = '';
        child.stdout!.on('data', (d) => {
          out += d;
          if (out.includes('"msg":"sidecar listening"')) resolve(out);
        });
        child.on('exit', (code) => reject(new Error(`exited ${code}`)));
      });
      assert.match(listening, /sidecar listening/);
      child.kill('SIGTERM');
      assert.equal(await new Promise((r) => child.on('exit', r)), 0);
      const usage = spawn(process.execPath, run(['controller']), { stdio: ['ignore', 'pipe', 'pipe'] });
      let err = '';
      usage.stderr!.on('data', (d) => (err += d));
      assert.equal(await new Promise((r) => usage.on('exit', r)), 2);
      assert.match(err, /controller needs --tls-cert and --tls-key/);
    });
  });
});
