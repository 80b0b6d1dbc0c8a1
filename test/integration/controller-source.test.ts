/**
 * The sidecar's side of the controller's config stream, against a fake
 * controller (HTTPS on 127.0.0.1, a throwaway self-signed certificate): a
 * snapshot that is not one is rejected like an invalid policy (logged, the
 * last good config kept, the stream read on), never thrown out of the stream's
 * event handler; a FIFO where the last good config is kept does not hold the
 * sidecar up; reconnects back off against a controller that answers and then
 * drops the stream, and a reconnect that brings the snapshot in force changes
 * nothing.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, it, type TestContext } from 'node:test';
import { pino } from 'pino';
import { validateReport, type ConfigVersion } from '../../api/index.js';
import { followController } from '../../sidecar/config/controller-source.js';
import type { RuntimeConfig } from '../../sidecar/config/index.js';
import { ManualClock } from '../../sidecar/resilience/index.js';
import { until } from '../support/until.js';

const spec = { upstreams: [{ name: 'a', url: 'http://127.0.0.1:9' }] };
const version = (generation: number): ConfigVersion => ({ source: 'controller', policy: 'shop/chat', generation, hash: `h${generation}` });
const event = (name: string, data: string) => `event: ${name}\ndata: ${data}\n\n`;

interface FakeController {
  url: string;
  ca: string;
  key: string;
  reports: unknown[];
  /** Every config stream opened, oldest first. */
  streams: ServerResponse[];
  /** Whether a config stream is ended right after its events (as a controller that answers 200 and then drops it). */
  endStreams: boolean;
}

/** A controller that sends `events` on every config stream and keeps the reports it is sent. */
async function fakeController(t: TestContext, events: string[], endStreams = false): Promise<FakeController> {
  const dir = mkdtempSync(join(tmpdir(), 'breakwater-fake-controller-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'key.pem', '-out', 'cert.pem', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { cwd: dir, stdio: 'ignore' });
  const ca = readFileSync(join(dir, 'cert.pem'), 'utf8');
  const fake: FakeController = { url: '', ca, key: readFileSync(join(dir, 'key.pem'), 'utf8'), reports: [], streams: [], endStreams };
  const server: Server = createServer({ cert: ca, key: readFileSync(join(dir, 'key.pem')) }, (req, res) => {
    if (req.method === 'POST') {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        fake.reports.push(JSON.parse(body));
        res.writeHead(204).end();
      });
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    fake.streams.push(res);
    for (const e of events) res.write(e);
    if (fake.endStreams) res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  fake.url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return fake;
}

function follow(t: TestContext, controller: { url: string; ca: string; urls?: string[] }, cacheFile?: string, connectTimeoutMs?: number, timing: { clock?: ManualClock; random?: () => number } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'breakwater-pod-'));
  const tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, 'pod-token');
  const applied: ConfigVersion[] = [];
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const source = followController({
    urls: controller.urls ?? [controller.url],
    pod: 'chat-1',
    connectTimeoutMs,
    tokenFile,
    ca: controller.ca,
    cacheFile,
    apply: (config: RuntimeConfig) => {
      applied.push(config.version);
      return { ok: true };
    },
    breakers: () => ({ a: { closed: 1, halfOpen: 0, open: 0 } }),
    log: pino({ level: 'debug' }, sink),
    ...timing,
  });
  t.after(() => source.stop());
  return { applied, logs };
}

describe('the controller\'s config stream, as the sidecar reads it', () => {
  it('rejects snapshots that are not one (logged, the last good config kept), reads on, and applies the good one after them', async (t) => {
    const controller = await fakeController(t, [
      event('snapshot', JSON.stringify({ version: version(1), spec })),
      event('snapshot', '{"version": {"source": "controller", "pol'), // cut short: not JSON
      event('snapshot', 'null'),
      event('snapshot', JSON.stringify({ spec })), // no version
      event('snapshot', JSON.stringify({ version: { ...version(2), generation: 'two' }, spec })),
      event('snapshot', JSON.stringify({ version: version(3), spec: null })), // a version, but no policy: an invalid one, reported
      event('no-policy', '{"reason": '),
      event('snapshot', JSON.stringify({ version: version(4), spec })),
    ]);
    const { applied, logs } = follow(t, controller);
    await until('the good snapshot after the malformed ones to be applied', () => applied.length >= 2 && controller.reports.some((r) => (r as { applied?: ConfigVersion }).applied?.generation === 4));
    assert.deepEqual(applied, [version(1), version(4)], 'nothing applied from a malformed snapshot');
    const rejections = logs.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('config from the controller rejected'));
    assert.equal(rejections.length, 5, JSON.stringify(logs.map((l) => l.msg)));
    assert.ok(logs.some((l) => l.msg === 'malformed no-policy event from the controller; ignored'));
    assert.ok(!logs.some((l) => l.msg === 'config stream lost'), 'the stream was read on, not dropped');
    for (const report of controller.reports) {
      const checked = validateReport(report, new Set(['a']));
      assert.ok(checked.ok, `a report the controller takes: ${JSON.stringify(report)}`);
    }
    assert.ok(controller.reports.some((r) => (r as { rejected?: { version: ConfigVersion } }).rejected?.version.generation === 3), 'the invalid snapshot with a version is reported as rejected');
  });

  // Without the fix, the read of the FIFO blocks this process for good: run this file under a timeout to see it.
  it('starts from the controller when the last good config\'s file is a FIFO, and replaces it', async (t) => {
    const controller = await fakeController(t, [event('snapshot', JSON.stringify({ version: version(7), spec }))]);
    const cache = join(mkdtempSync(join(tmpdir(), 'breakwater-cache-')), 'config.json');
    execFileSync('mkfifo', [cache]);
    const { applied, logs } = follow(t, controller, cache);
    assert.ok(logs.some((l) => l.msg === 'ignoring the config kept on disk: not a regular file'));
    await until('the controller\'s snapshot applied', () => applied.length === 1);
    assert.deepEqual(JSON.parse(readFileSync(cache, 'utf8')).version, version(7), 'kept on disk, in a regular file');
  });

  it('gives up on a replica that never answers (connect, TLS) within its deadline and moves on to the next (issue 26)', async (t) => {
    // A replica going away: it takes the connection and never says a word, not even the TLS handshake.
    const held = new Set<net.Socket>();
    const silent = net.createServer((socket) => {
      held.add(socket);
      socket.on('error', () => {});
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    t.after(() => {
      for (const socket of held) socket.destroy();
      silent.close();
    });
    const good = await fakeController(t, [event('snapshot', JSON.stringify({ version: version(1), spec }))]);
    const started = Date.now();
    const { applied, logs } = follow(t, { ...good, urls: [`https://127.0.0.1:${(silent.address() as AddressInfo).port}`, good.url] }, undefined, 300);
    await until('the config from the next replica', () => applied.length, (n) => n === 1, 10_000);
    assert.ok(logs.some((l) => String(l.why).includes('no answer within 0.3 s (connect, TLS, headers)')), JSON.stringify(logs.map((l) => l.why ?? l.msg)));
    t.diagnostic(`config from the second replica after ${Date.now() - started} ms (deadline 300 ms)`);
  });

  it('gives up on a refusal that stalls, drips or breaks, and reconnects (red team, issue 26)', async (t) => {
    const good = await fakeController(t, [event('snapshot', JSON.stringify({ version: version(1), spec }))]);
    // Another replica with the same certificate: 503 and a body that never ends, as one going away in the middle of its answer.
    const refusing: Server = createServer({ cert: good.ca, key: good.key }, (_req, res) => {
      res.writeHead(503, { 'content-length': 100 });
      res.write('going away');
    });
    await new Promise<void>((resolve) => refusing.listen(0, '127.0.0.1', resolve));
    t.after(() => {
      refusing.closeAllConnections();
      refusing.close();
    });
    const { applied, logs } = follow(t, { ...good, urls: [`https://127.0.0.1:${(refusing.address() as AddressInfo).port}`, good.url] }, undefined, 300);
    await until('the config from the next replica after a refusal that never ended', () => applied.length, (n) => n === 1, 10_000);
    assert.ok(logs.some((l) => /a refusal that did not end|controller answered 503/.test(String(l.why))), JSON.stringify(logs.map((l) => l.why ?? l.msg)));
  });

  it('backs off against a controller that answers 200 and drops the stream, starts over only after a stream stayed up 10 s, and takes the snapshot in force only once (red team, issue 26)', async (t) => {
    const snapshot = { version: version(1), spec, credentials: { 'key/apiKey': 'sk-1' } };
    const controller = await fakeController(t, [event('snapshot', JSON.stringify(snapshot))], true);
    const cache = join(mkdtempSync(join(tmpdir(), 'breakwater-cache-')), 'config.json');
    const clock = new ManualClock();
    const { applied, logs } = follow(t, controller, cache, undefined, { clock, random: () => 0.5 });
    const loss = async (n: number) => (await until(`config stream ${n} lost`, () => logs.filter((l) => l.msg === 'config stream lost'), (l) => l.length >= n))[n - 1]!.retryInMs as number;
    const kept = await until('the snapshot kept on disk', () => statSync(cache, { throwIfNoEntry: false })?.ino);
    const delays: number[] = [];
    for (let n = 1; n <= 6; n++) {
      delays.push(await loss(n));
      if (n === 6) controller.endStreams = false; // the next stream stays up
      clock.advance(delays.at(-1)!);
    }
    // The jitter is fixed at half the ceiling: the ceiling doubles from 500 ms, whatever the 200s before said.
    assert.deepEqual(delays, [250, 500, 1000, 2000, 4000, 8000]);
    await until('the seventh stream to bring the snapshot in force again', () => logs.filter((l) => l.msg === 'config from the controller already in force').length, (n) => n === 6);
    clock.advance(10_000);
    controller.streams.at(-1)!.end();
    assert.equal(await loss(7), 250, 'after a stream that stayed up 10 s, the backoff starts over');
    assert.deepEqual(applied, [version(1)], 'the same snapshot, brought again by six reconnects, is applied once');
    assert.equal(statSync(cache).ino, kept, 'and kept on disk once (a write replaces the file)');
  });

  it('reconnects at the backoff\'s base after a stopping controller\'s drain notice, at most once per 10 s (issue 26)', async (t) => {
    const snapshot = { version: version(1), spec, credentials: { 'key/apiKey': 'sk-1' } };
    // Every stream brings the snapshot, then the notice of a controller that stops, then ends: a rollout, or one that says so on every stream.
    const controller = await fakeController(t, [event('snapshot', JSON.stringify(snapshot)), event('draining', '{}')], true);
    const clock = new ManualClock();
    const { logs } = follow(t, controller, undefined, undefined, { clock, random: () => 0.5 });
    const loss = async (n: number) => (await until(`config stream ${n} lost`, () => logs.filter((l) => l.msg === 'config stream lost'), (l) => l.length >= n))[n - 1]!.retryInMs as number;
    const delays = [await loss(1)];
    for (let n = 2; n <= 3; n++) {
      clock.advance(delays.at(-1)!);
      delays.push(await loss(n));
    }
    // The first notice starts the backoff over; the next ones within 10 s do not: the ceiling doubles from 500 ms as for any short stream.
    assert.deepEqual(delays, [250, 500, 1000]);
    clock.advance(delays.at(-1)! + 10_000);
    assert.equal(await loss(4), 250, '10 s after the last, a notice starts the backoff over again');
  });

  it('backs off against a controller whose event is over the size cap (red team, issue 26)', async (t) => {
    const huge = event('snapshot', JSON.stringify({ version: version(1), spec, padding: 'A'.repeat(5 << 20) }));
    const controller = await fakeController(t, [huge]);
    const clock = new ManualClock();
    const { applied, logs } = follow(t, controller, undefined, undefined, { clock, random: () => 0.5 });
    const delays: number[] = [];
    for (let n = 1; n <= 3; n++) {
      const lost = await until(`config stream ${n} lost`, () => logs.filter((l) => l.msg === 'config stream lost'), (l) => l.length >= n, 10_000);
      assert.match(String(lost[n - 1]!.why), /an event longer than/);
      delays.push(lost[n - 1]!.retryInMs as number);
      clock.advance(delays.at(-1)!);
    }
    assert.deepEqual(delays, [250, 500, 1000]);
    assert.deepEqual(applied, []);
  });
});
