/**
 * A real Jaeger (v2: an OpenTelemetry Collector with Jaeger's in-memory
 * storage and query service) on 127.0.0.1, for the tracing tests: OTLP
 * receivers (HTTP and gRPC) and the query API on free ports. The binary comes
 * from $JAEGER, or scripts/build-jaeger.sh builds it from its Go module once
 * (cached in ~/.cache/breakwater). Traces are read back through the query
 * API (/api/traces/<id>), as Jaeger's UI reads them.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { freePort } from './ports.js';

export interface JaegerSpan {
  traceID: string;
  spanID: string;
  operationName: string;
  references: { refType: 'CHILD_OF' | 'FOLLOWS_FROM'; traceID: string; spanID: string }[];
  startTime: number;
  duration: number;
  tags: { key: string; type: string; value: unknown }[];
  logs: { timestamp: number; fields: { key: string; value: unknown }[] }[];
  processID: string;
}

export interface Jaeger {
  /** The OTLP/HTTP endpoint (OTEL_EXPORTER_OTLP_ENDPOINT) and the OTLP/gRPC one. */
  otlpHttp: string;
  otlpGrpc: string;
  /** The spans of a trace (hex id), [] while Jaeger has none. */
  spans(traceId: string): Promise<JaegerSpan[]>;
  /** Kills Jaeger and waits for it to exit. */
  stop(): Promise<void>;
}

/** The Jaeger binary: $JAEGER, or built (once) by scripts/build-jaeger.sh. */
export function jaegerBinary(): string {
  if (process.env.JAEGER) return process.env.JAEGER;
  const script = fileURLToPath(new URL('../../scripts/build-jaeger.sh', import.meta.url));
  return execFileSync('bash', [script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim().split('\n').at(-1)!;
}

function config(ports: { http: number; grpc: number; query: number; queryGrpc: number; health: number }): string {
  return `
service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp]
      processors: []
      exporters: [jaeger_storage_exporter]
  telemetry:
    logs: {level: warn}
    metrics: {level: none}
extensions:
  healthcheckv2:
    use_v2: true
    http: {endpoint: 127.0.0.1:${ports.health}}
  jaeger_query:
    storage: {traces: memstore}
    http: {endpoint: 127.0.0.1:${ports.query}}
    grpc: {endpoint: 127.0.0.1:${ports.queryGrpc}}
  jaeger_storage:
    backends:
      memstore: {memory: {max_traces: 100000}}
receivers:
  otlp:
    protocols:
      grpc: {endpoint: 127.0.0.1:${ports.grpc}}
      http: {endpoint: 127.0.0.1:${ports.http}}
exporters:
  jaeger_storage_exporter: {trace_storage: memstore}
`;
}

/** Starts Jaeger; stopped when the test `t` ends. */
export async function startJaeger(t: TestContext, binary = jaegerBinary()): Promise<Jaeger> {
  const ports = { http: await freePort(), grpc: await freePort(), query: await freePort(), queryGrpc: await freePort(), health: await freePort() };
  const dir = mkdtempSync(join(tmpdir(), 'breakwater-jaeger-'));
  writeFileSync(join(dir, 'config.yaml'), config(ports));
  const child: ChildProcess = spawn(binary, ['--config', join(dir, 'config.yaml')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr = (stderr + d).slice(-20_000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  };
  t.after(stop);
  const query = `http://127.0.0.1:${ports.query}`;
  for (let waited = 0; ; waited += 100) {
    if (child.exitCode !== null) throw new Error(`jaeger exited (${child.exitCode}): ${stderr}`);
    const up = await fetch(`${query}/api/services`).then((r) => r.ok, () => false);
    const receiving = up && (await fetch(`http://127.0.0.1:${ports.http}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' }).then((r) => r.status < 500, () => false));
    if (receiving) break;
    if (waited > 30_000) throw new Error(`jaeger did not come up in 30 s: ${stderr}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    otlpHttp: `http://127.0.0.1:${ports.http}`,
    otlpGrpc: `http://127.0.0.1:${ports.grpc}`,
    async spans(traceId) {
      const res = await fetch(`${query}/api/traces/${traceId}`);
      if (res.status === 404) return [];
      if (!res.ok) throw new Error(`jaeger query: ${res.status} ${await res.text()}`);
      const body = (await res.json()) as { data: { spans: JaegerSpan[] }[] };
      return body.data.flatMap((trace) => trace.spans);
    },
    stop,
  };
}

/** A span's tag value by key. */
export const tag = (span: JaegerSpan, key: string): unknown => span.tags.find((t) => t.key === key)?.value;
