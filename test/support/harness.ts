/**
 * Test harness: a mock upstream and an in-process sidecar on real loopback
 * sockets, both closed when the test ends; plus small HTTP helpers.
 */
import type { TestContext } from 'node:test';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { stringify } from 'yaml';
import { loadPolicyText } from '../../sidecar/config/policy-file.js';
import { MockUpstream, type MockUpstreamOptions } from '../../sidecar/mock-upstream/mock-upstream.js';
import { startSidecar, type Sidecar } from '../../sidecar/sidecar.js';

export interface Rig {
  sidecar: Sidecar;
  /** Log lines the sidecar wrote, parsed. */
  logs: Record<string, unknown>[];
  url(path: string): string;
  metric(name: string, labels?: Record<string, string>): Promise<number>;
}

/** Starts a sidecar for `spec` (an object, written as YAML and loaded as a policy file would be), logging at `logLevel`. */
export async function startRig(t: TestContext, spec: object, logLevel = 'info'): Promise<Rig> {
  const loaded = loadPolicyText(stringify({ shutdown: { drainTimeout: '2s' }, ...spec }), 'test policy');
  if (!loaded.ok) throw new Error(loaded.error);
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const sidecar = await startSidecar({
    config: loaded.config,
    listen: { host: '127.0.0.1', port: 0 },
    admin: { host: '127.0.0.1', port: 0 },
    log: pino({ level: logLevel }, sink),
  });
  t.after(() => sidecar.drain());
  return {
    sidecar,
    logs,
    url: (path) => sidecar.dataUrl + path,
    async metric(name, labels = {}) {
      const text = await (await fetch(`${sidecar.adminUrl}/metrics`)).text();
      let sum = 0;
      for (const line of text.split('\n')) {
        if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
        if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
      }
      return sum;
    },
  };
}

export async function startMock(t: TestContext, options: MockUpstreamOptions = {}): Promise<MockUpstream> {
  const mock = await MockUpstream.start(options);
  t.after(() => mock.close());
  return mock;
}

export const chat = (extra: object = {}) => JSON.stringify({ model: 'gpt-test', messages: [{ role: 'user', content: 'secret prompt text' }], ...extra });

export async function post(url: string, body: string, headers: Record<string, string> = {}, signal?: AbortSignal) {
  const started = performance.now();
  const res = await fetch(url, { method: 'POST', body, headers: { 'content-type': 'application/json', ...headers }, signal });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, json: () => JSON.parse(text) as Record<string, any>, ms: performance.now() - started };
}
