/** Runs the real `breakwater` CLI as a child process (on the Node that runs the tests) and waits for it to be ready. */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../../cli.ts', import.meta.url));

export interface SidecarProcess {
  child: ChildProcess;
  dataUrl: string;
  adminUrl: string;
  policyFile: string;
  /** Parsed JSON log lines so far. */
  logs: Record<string, unknown>[];
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
  stderr(): string;
}

export function writePolicy(text: string): string {
  const file = join(mkdtempSync(join(tmpdir(), 'breakwater-')), 'policy.yaml');
  writeFileSync(file, text);
  return file;
}

export function runCli(args: string[], env?: NodeJS.ProcessEnv): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: env && { ...process.env, ...env } });
}

/** Collects a finished CLI run's exit code and output. */
export async function cliResult(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = runCli(args);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const code = await new Promise<number | null>((r) => child.on('exit', r));
  return { code, stdout, stderr };
}

/** `env`: variables the sidecar gets beside the tests' own (OTEL_* for the tracing tests). */
export async function spawnSidecar(t: TestContext, policyText: string, env?: NodeJS.ProcessEnv): Promise<SidecarProcess> {
  const policyFile = writePolicy(policyText);
  return startSidecarProcess(t, ['--policy', policyFile], policyFile, env);
}

/** Runs `breakwater sidecar` with these config arguments, on ephemeral ports. */
export async function startSidecarProcess(t: TestContext, configArgs: string[], policyFile = '', env?: NodeJS.ProcessEnv): Promise<SidecarProcess> {
  const { child, logs, exited, stderr, entry } = await startCliProcess(t, ['sidecar', ...configArgs, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0'], 'sidecar listening', env);
  return { child, dataUrl: entry.dataUrl as string, adminUrl: entry.adminUrl as string, policyFile, logs, exited, stderr };
}

export interface CliProcess {
  child: ChildProcess;
  logs: Record<string, unknown>[];
  exited: Promise<number | null>;
  stderr(): string;
  /** The log line that said the process is up. */
  entry: Record<string, unknown>;
}

/** Runs the CLI until it logs `readyMessage`; killed when the test `t` ends (if given; otherwise the caller stops it). */
export async function startCliProcess(t: TestContext | undefined, args: string[], readyMessage: string, env?: NodeJS.ProcessEnv): Promise<CliProcess> {
  const child = runCli(args, env);
  const logs: Record<string, unknown>[] = [];
  let err = '';
  let pending = '';
  child.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((r) => child.on('exit', r));
  t?.after(async () => {
    if (child.exitCode === null) child.kill('SIGKILL');
    await exited;
  });
  const ready = new Promise<Record<string, unknown>>((resolve, reject) => {
    child.stdout!.on('data', (d) => {
      pending += d;
      let nl: number;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        if (!line.startsWith('{')) continue;
        const entry = JSON.parse(line) as Record<string, unknown>;
        logs.push(entry);
        if (entry.msg === readyMessage) resolve(entry);
      }
    });
    void exited.then((code) => reject(new Error(`${args[0]} exited (${code}) before it was ready: ${err}`)));
  });
  const entry = await ready;
  return { child, logs, exited, stderr: () => err, entry };
}
