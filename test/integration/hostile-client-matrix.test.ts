/**
 * The hostile-client matrix, against a real `breakwater sidecar` process and a
 * healthy upstream: slowloris, idle floods, oversize and slow uploads, clients
 * that stop reading, aborts at every phase, odd `model` values, bad
 * `x-breakwater-*` values, malformed and oversized requests. All attacks run
 * at once. Each gets its expected answer, or its connection closed, by its
 * deadline; afterwards slots, endpoint counts and held body bytes are back to
 * zero, fds back to baseline, RSS bounded, and a normal request is served.
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { it } from 'node:test';
import { stringify } from 'yaml';
import { chat, post, startMock } from '../support/harness.js';
import { MiB, openFds, rssBytes, sampleRss, settle } from '../support/process-usage.js';
import { spawnSidecar } from '../support/sidecar-process.js';

const HEADERS_TIMEOUT_MS = 1000;
const REQUEST_TIMEOUT_MS = 2000;
/** Every attack ends within this: the longest deadline (request timeout, stream idle) plus scheduling slack. */
const ATTACK_DEADLINE_MS = 6000;

const PATH = '/primary/v1/chat/completions';
const head = (extra = '', path = PATH) => `POST ${path} HTTP/1.1\r\nhost: sidecar\r\ncontent-type: application/json\r\n${extra}`;
const request = (body: string, extra = '', path = PATH) => `${head(extra, path)}content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;

/** What an attack ends with: the status of the first answer (if any), and whether the sidecar closed the connection. */
interface Ending {
  status?: number;
  closedBySidecar: boolean;
  ms: number;
}

interface Attack {
  name: string;
  /** Drives the socket; `give()` makes the client leave (an abort). */
  run(socket: Socket, give: () => void): void;
  /** What must have happened by the deadline. */
  expect: (e: Ending) => boolean;
  /** The attack ends at the first answer's status line (default), or only when the connection closes. */
  until?: 'status' | 'close';
  /** How many connections run this attack at once. */
  connections?: number;
}

const drip = (socket: Socket, ms: number, piece: () => string) => {
  const timer = setInterval(() => socket.writable && socket.write(piece()), ms);
  socket.once('close', () => clearInterval(timer));
};
const status = (code: number) => (e: Ending) => e.status === code;
const closedWithin = (ms: number) => (e: Ending) => e.closedBySidecar && e.ms <= ms;

const ATTACKS: Attack[] = [
  { name: 'slowloris', connections: 20, until: 'close', run: (s) => (s.write(head()), drip(s, 100, () => 'x-drip: 1\r\n')), expect: closedWithin(HEADERS_TIMEOUT_MS + 1500) },
  { name: 'idle flood', connections: 200, until: 'close', run: () => {}, expect: closedWithin(HEADERS_TIMEOUT_MS + 1500) },
  {
    name: 'slow upload',
    connections: 10,
    until: 'close',
    run: (s) => (s.write(`${head()}content-length: 1000000\r\n\r\n{"model":"m","messages":[`), drip(s, 100, () => ' '.repeat(1024))),
    expect: (e) => (e.status === 408 || e.status === undefined) && closedWithin(REQUEST_TIMEOUT_MS + 1500)(e),
  },
  {
    name: 'oversize upload (streamed once)',
    run: (s) => {
      const filler = 'z'.repeat(12 * 1024 * 1024);
      s.write(request(`{"model":"m","messages":[{"role":"user","content":"${filler}"}]}`));
    },
    expect: status(200),
  },
  {
    // 16 MB: more than socket buffers hold. A paused client never sees the sidecar close; it leaves after 5 s,
    // and the test checks at 3.5 s that the sidecar gave the slot back (after streamIdle) while the client still stalls.
    name: 'stops reading a stream',
    until: 'close',
    run: (s, give) => {
      s.write(request(chat({ stream: true }), '', '/big/v1/chat/completions'));
      s.once('data', () => s.pause());
      setTimeout(give, 5000);
    },
    expect: (e) => e.status === 200,
  },
  { name: 'abort in the headers', until: 'close', run: (s, give) => s.write(head(), give), expect: () => true },
  { name: 'abort after the headers', until: 'close', run: (s, give) => s.write(`${head()}content-length: 5000\r\n\r\n`, () => setTimeout(give, 50)), expect: () => true },
  { name: 'abort mid-body', until: 'close', run: (s, give) => s.write(`${head()}content-length: 5000\r\n\r\n{"model":"m"`, () => setTimeout(give, 50)), expect: () => true },
  { name: 'abort waiting for the answer', until: 'close', run: (s, give) => s.write(request(chat()), () => setTimeout(give, 100)), expect: () => true },
  { name: 'abort after the stream started', until: 'close', run: (s, give) => (s.write(request(chat({ stream: true }))), s.once('data', give)), expect: () => true },
  { name: 'abort mid-stream', until: 'close', run: (s, give) => (s.write(request(chat({ stream: true }))), s.on('data', (d: Buffer) => d.includes('data:') && give())), expect: () => true },
  ...['ü€ model', 'a\r\nb', 'nul\u0000model', 'lone \ud800 surrogate', 'm'.repeat(100_000)].map((model, i) => ({
    name: `odd model ${i + 1}`,
    run: (s: Socket) => s.write(request(JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }] }))),
    expect: status(200),
  })),
  { name: 'unknown priority', run: (s) => s.write(request(chat(), 'x-breakwater-priority: nope\r\n')), expect: status(400) },
  { name: 'long priority', run: (s) => s.write(request(chat(), `x-breakwater-priority: ${'p'.repeat(8000)}\r\n`)), expect: status(400) },
  { name: 'bad timeout', run: (s) => s.write(request(chat(), 'x-breakwater-timeout: soon\r\n')), expect: status(400) },
  { name: 'huge timeout', run: (s) => s.write(request(chat(), `x-breakwater-timeout: ${'9'.repeat(12_000)}\r\n`)), expect: status(400) },
  { name: 'header flood', run: (s) => s.write(request(chat(), 'x-flood: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n'.repeat(2000))), expect: status(431) },
  { name: 'garbage request line', run: (s) => s.write('GARBAGE\r\n\r\n'), expect: status(400) },
  { name: 'dot segments', run: (s) => s.write(request(chat(), '', '/primary/v1/../../admin')), expect: status(400) },
  { name: 'absolute-form URL to another host', run: (s) => s.write(request(chat(), '', 'http://evil.example/v1/chat/completions')), expect: status(404) },
  { name: 'unknown upstream', run: (s) => s.write(request(chat(), '', '/nowhere/v1/chat/completions')), expect: status(404) },
];

interface Status {
  bufferedBytes: number;
  upstreams: { bulkhead: { inFlight: number; queued: number }; endpoints: { inFlight: number }[] }[];
}

it(`hostile clients: ${ATTACKS.length} attacks at once, each ended by its deadline, nothing held afterwards`, async (t) => {
  const mock = await startMock(t);
  mock.defaultBehavior = { kind: 'ok', delayMs: 300, chunks: 10, chunkDelayMs: 100 };
  const big = await startMock(t);
  big.defaultBehavior = { kind: 'ok', text: 'b'.repeat(16 * 1024 * 1024), chunks: 64 };
  const policy = {
    upstreams: [
      { name: 'primary', url: mock.url, timeouts: { streamIdle: '1s' } },
      { name: 'big', url: big.url, timeouts: { streamIdle: '1s' } },
    ],
    inbound: { headersTimeout: `${HEADERS_TIMEOUT_MS}ms`, requestTimeout: `${REQUEST_TIMEOUT_MS}ms` },
  };
  const sidecar = await spawnSidecar(t, stringify(policy));
  const pid = sidecar.child.pid!;
  assert.equal((await post(`${sidecar.dataUrl}${PATH}`, chat())).status, 200);
  const baseRss = rssBytes(pid);
  const baseFds = openFds(pid);
  const sampler = sampleRss(pid);
  const port = Number(new URL(sidecar.dataUrl).port);
  const runs = ATTACKS.flatMap((a) => Array.from({ length: a.connections ?? 1 }, () => a));
  const ended = Promise.all(runs.map((a) => attack(port, a)));
  await new Promise((r) => setTimeout(r, 3500));
  const during = (await (await fetch(`${sidecar.adminUrl}/status`)).json()) as Status;
  assert.equal(during.upstreams[1]!.bulkhead.inFlight, 0, 'the stalled reader\'s slot came back while it still stalls');
  const endings = await ended;
  const peak = sampler.stop();

  const failures: string[] = [];
  endings.forEach((e, i) => {
    const a = runs[i]!;
    if (e.ms > ATTACK_DEADLINE_MS) failures.push(`${a.name}: still open after ${ATTACK_DEADLINE_MS} ms`);
    else if (!a.expect(e)) failures.push(`${a.name}: ${JSON.stringify(e)}`);
  });
  assert.deepEqual([...new Set(failures)], []);

  const after = await settle(
    async () => (await (await fetch(`${sidecar.adminUrl}/status`)).json()) as Status,
    (s) => s.bufferedBytes === 0 && s.upstreams.every((u) => u.bulkhead.inFlight === 0 && u.bulkhead.queued === 0 && u.endpoints.every((e) => e.inFlight === 0)),
    5000,
  );
  assert.equal(after.bufferedBytes, 0, 'request-body bytes given back');
  assert.deepEqual(after.upstreams.map((u) => [u.bulkhead.inFlight, u.bulkhead.queued, u.endpoints[0]!.inFlight]), [[0, 0, 0], [0, 0, 0]], 'slots and endpoint counts back to zero');
  const normal = await post(`${sidecar.dataUrl}${PATH}`, chat());
  assert.equal(normal.status, 200, 'a normal request is served afterwards');
  mock.closeIdleConnections();
  big.closeIdleConnections();
  const fds = await settle(() => openFds(pid), (n) => n <= baseFds, 5000);
  t.diagnostic(`${runs.length} connections; RSS ${Math.round(baseRss / MiB)} MiB before, peak ${Math.round(peak / MiB)} MiB; fds ${baseFds} before, ${fds} after; a normal request afterwards took ${Math.round(normal.ms)} ms`);
  assert.ok(fds <= baseFds, `${fds} fds open, ${baseFds} before`);
  // The largest holds: a 12 MiB upload streamed through (not buffered), a 16 MiB stream's pieces in flight, 250 idle sockets.
  // Measured +81 to +116 MiB across runs (garbage collected late); buffering any attack whole would pass this by far.
  assert.ok(peak - baseRss <= 128 * MiB, `RSS grew by ${Math.round((peak - baseRss) / MiB)} MiB`);
});

/** Runs one attack on its own connection until the sidecar closes it, the client gives up, or the deadline passes. */
function attack(port: number, a: Attack): Promise<Ending> {
  const started = performance.now();
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let received = Buffer.alloc(0);
    let gaveUp = false;
    const end = (closedBySidecar: boolean) => {
      clearTimeout(deadline);
      socket.destroy();
      const code = /^HTTP\/1\.1 (\d{3})/.exec(received.toString('latin1'))?.[1];
      resolve({ status: code ? Number(code) : undefined, closedBySidecar, ms: performance.now() - started });
    };
    const deadline = setTimeout(() => end(false), ATTACK_DEADLINE_MS + 1000);
    socket.on('error', () => {});
    socket.on('data', (d: Buffer) => {
      if (received.length < 64) received = Buffer.concat([received, d.subarray(0, 64)]);
      if ((a.until ?? 'status') === 'status' && /^HTTP\/1\.1 \d{3}/.test(received.toString('latin1'))) end(true);
    });
    socket.on('close', () => end(!gaveUp));
    socket.on('connect', () =>
      a.run(socket, () => {
        gaveUp = true;
        end(false);
      }),
    );
  });
}
