/** What a child process holds, read from /proc: resident memory and open file descriptors. */
import { readdirSync, readFileSync } from 'node:fs';

export function rssBytes(pid: number): number {
  const line = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!line) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(line[1]) * 1024;
}

export function openFds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** Samples the process's RSS every 20 ms until stopped; `stop()` gives the peak. */
export function sampleRss(pid: number): { stop(): number } {
  let peak = rssBytes(pid);
  const timer = setInterval(() => {
    try {
      peak = Math.max(peak, rssBytes(pid));
    } catch {
      // the process ended: the last peak stands
    }
  }, 20);
  return {
    stop() {
      clearInterval(timer);
      return peak;
    },
  };
}

/** Polls `read` until `ok` holds or `ms` pass; gives the last value. */
export async function settle<T>(read: () => T | Promise<T>, ok: (value: T) => boolean, ms: number): Promise<T> {
  const until = performance.now() + ms;
  let value = await read();
  while (!ok(value) && performance.now() < until) {
    await new Promise((r) => setTimeout(r, 50));
    value = await read();
  }
  return value;
}

export const MiB = 1024 * 1024;
