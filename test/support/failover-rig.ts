/**
 * The default policy plus one fallback tier, as a platform team writes it:
 * a sidecar process whose upstream `primary` (OpenAI, Anthropic or Ollama)
 * falls back to `backup` with a larger-context model, each a fake model
 * server (test/support/model-upstream.ts) of its own, and the app's reader
 * for that API (test/support/app-clients.ts). Both model servers behave as
 * real ones of their API by default: realistic shapes, and a prefill that
 * Anthropic and Ollama continue and OpenAI ignores.
 */
import type { TestContext } from 'node:test';
import { stringify } from 'yaml';
import { anthropicCreate, anthropicStream, ollamaChat, openaiStream, type Seen } from './app-clients.js';
import { startModelUpstream, type Api, type Call, type Fault, type ModelUpstream, type ModelUpstreamOptions } from './model-upstream.js';
import { spawnSidecar, type SidecarProcess } from './sidecar-process.js';
import { until } from './until.js';

export const FALLBACK_MODEL = 'large-context-model';
/** The model the app asks for, which the primary echoes. */
export const APP_MODEL: Record<Api, string> = { openai: 'small-model', anthropic: 'claude-small', ollama: 'small-model' };

export interface FailoverRig {
  api: Api;
  sidecar: SidecarProcess;
  primary: ModelUpstream;
  backup: ModelUpstream;
  /** The base URL the app's SDK is given. */
  baseURL: string;
  /** One streamed request as the app makes it, through its API's reader. */
  ask(options?: { includeUsage?: boolean; via?: 'stream' | 'create'; timeoutMs?: number }): Promise<Seen>;
  /** Upstream requests, both servers together. */
  calls(): number;
}

const realLike = (api: Api, options: ModelUpstreamOptions): ModelUpstreamOptions => ({ realistic: true, prefill: api === 'openai' ? 'ignores' : 'continues', ...options });

export async function failoverRig(t: TestContext, api: Api, primary: ModelUpstreamOptions, backup: ModelUpstreamOptions = {}, primaryExtra: object = {}): Promise<FailoverRig> {
  const [p, b] = await Promise.all([startModelUpstream(t, realLike(api, primary)), startModelUpstream(t, realLike(api, backup))]);
  const policy = {
    upstreams: [
      { name: 'primary', url: p.url, api, fallback: [{ upstream: 'backup', model: FALLBACK_MODEL }], ...primaryExtra },
      { name: 'backup', url: b.url, api },
    ],
  };
  const sidecar = await spawnSidecar(t, stringify(policy));
  const baseURL = api === 'openai' ? `${sidecar.dataUrl}/primary/v1` : `${sidecar.dataUrl}/primary`;
  return {
    api,
    sidecar,
    primary: p,
    backup: b,
    baseURL,
    calls: () => p.calls.length + b.calls.length,
    ask(options = {}) {
      const timeoutMs = options.timeoutMs ?? 60_000;
      if (api === 'openai') return openaiStream(baseURL, { includeUsage: options.includeUsage ?? true, timeoutMs });
      if (api === 'anthropic') return options.via === 'create' ? anthropicCreate(baseURL, { timeoutMs }) : anthropicStream(baseURL, { timeoutMs });
      return ollamaChat(baseURL, { timeoutMs });
    },
  };
}

/** The upstream requests, in order, for a diagnostic: `primary+120ms:prefill(…w39)`. */
export function trace(rig: FailoverRig): string {
  const all = [...rig.primary.calls.map((c) => ({ who: 'primary', c })), ...rig.backup.calls.map((c) => ({ who: 'backup', c }))].sort((a, b) => a.c.at - b.c.at);
  const t0 = all[0]?.c.at ?? 0;
  return all
    .map(({ who, c }) => {
      const last = Array.isArray(c.json.messages) ? c.json.messages.at(-1) : undefined;
      const prefill = last?.role === 'assistant' ? `prefill(…${JSON.stringify(typeof last.content === 'string' ? last.content.slice(-8) : '[blocks]')})` : 'fresh';
      return `${who}+${c.at - t0}ms:${prefill}`;
    })
    .join(' ');
}

/** The same fault on every call. */
export const always = (fault: Fault) => () => fault;
/** The fault on the first `n` calls, then none. */
export const first = (n: number, fault: Fault) => (call: Call) => (call.n <= n ? fault : undefined);
/** The fault on calls 1, 3, 5…: every other call. */
export const everyOther = (fault: Fault) => (call: Call) => (call.n % 2 === 1 ? fault : undefined);

export interface MetricLine {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The sidecar's metrics, parsed (counters and gauges; histogram series too, by their full names). */
export async function readMetrics(adminUrl: string): Promise<MetricLine[]> {
  const text = await (await fetch(`${adminUrl}/metrics`)).text();
  const out: MetricLine[] = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const [, k, v] of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[k!] = v!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

export const sum = (lines: MetricLine[], name: string, match: (labels: Record<string, string>) => boolean = () => true) =>
  lines.filter((l) => l.name === name && match(l.labels)).reduce((n, l) => n + l.value, 0);

/** Waits until the sidecar has counted `n` finished requests (it counts a stream when it ends), and returns its metrics. */
export async function metricsAfter(adminUrl: string, n: number): Promise<MetricLine[]> {
  return until(`${n} requests counted`, () => readMetrics(adminUrl), (lines) => sum(lines, 'breakwater_requests_total') >= n, 5000);
}
