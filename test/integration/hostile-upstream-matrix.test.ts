/**
 * The hostile-upstream matrix: one raw TCP upstream plays a byte-level
 * misbehaviour per upstream of the policy (1xx and 101, bad chunking, CL+TE,
 * endless bodies, comment-only SSE, giant lines, header floods, resets at
 * every phase, silence, never reading the request body, garbage). Every case
 * runs in plain and streaming mode, all at once, against a real `breakwater
 * sidecar` process. For each: one answer by the deadline, with the expected
 * status; slots and permits back to zero; requests and attempts counted.
 * For the whole run: RSS bounded and fds back to baseline.
 */
import assert from 'node:assert/strict';
import { request, Agent } from 'node:http';
import type { Socket } from 'node:net';
import { it } from 'node:test';
import { stringify } from 'yaml';
import { MiB, openFds, rssBytes, sampleRss, settle } from '../support/process-usage.js';
import { startRawUpstream } from '../support/raw-upstream.js';
import { spawnSidecar } from '../support/sidecar-process.js';

const TOTAL_MS = 3000;
/** How late past the total timeout an answer may end: scheduling on a busy 2-core machine. */
const GRACE_MS = 2000;

const JSON_ANSWER = '{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}';
const SSE_ANSWER = 'data: {"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"hi"}}]}\n\ndata: [DONE]\n\n';
const chunk = (text: string) => `${Buffer.byteLength(text).toString(16)}\r\n${text}\r\n`;
const okHead = (stream: boolean) => `HTTP/1.1 200 OK\r\ncontent-type: ${stream ? 'text/event-stream' : 'application/json'}\r\ntransfer-encoding: chunked\r\n\r\n`;
const okAnswer = (stream: boolean) => okHead(stream) + chunk(stream ? SSE_ANSWER : JSON_ANSWER) + '0\r\n\r\n';
const firstEvent = 'data: {"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n';

/** Writes `piece()` every `ms` until the socket closes. */
function pump(socket: Socket, ms: number, piece: () => string | Buffer): void {
  const timer = setInterval(() => {
    if (!socket.destroyed) socket.write(piece());
  }, ms);
  socket.once('close', () => clearInterval(timer));
}

interface Case {
  name: string;
  script(socket: Socket, stream: boolean): void;
  /** Statuses the app may see, plain and stream. */
  plain: number[];
  stream: number[];
  /** Bytes of request body the app sends (default: a small chat request). */
  bodyBytes?: number;
}

const CASES: Case[] = [
  { name: 'continue-then-ok', script: (s, stream) => s.write(`HTTP/1.1 100 Continue\r\n\r\n${okAnswer(stream)}`), plain: [200], stream: [200] },
  { name: 'early-hints-then-ok', script: (s, stream) => s.write(`HTTP/1.1 103 Early Hints\r\nlink: </x>\r\n\r\n${okAnswer(stream)}`), plain: [200], stream: [200] },
  { name: 'switching-protocols', script: (s) => s.write('HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n'), plain: [502], stream: [502] },
  { name: 'bad-chunk-size', script: (s, stream) => s.write(`${okHead(stream)}zz\r\nnope\r\n`), plain: [502], stream: [502] },
  { name: 'cl-and-te', script: (s, stream) => s.write(`HTTP/1.1 200 OK\r\ncontent-type: ${stream ? 'text/event-stream' : 'application/json'}\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n${chunk('hello')}0\r\n\r\n`), plain: [502], stream: [502] },
  {
    name: 'endless-body',
    script: (s, stream) => {
      s.write(okHead(stream) + chunk(stream ? firstEvent : '{"choices":['));
      pump(s, 5, () => chunk(stream ? firstEvent : ' '.repeat(1024)));
    },
    plain: [502, 504], // past limits.maxAnswerBytes, or the attempt timeout
    stream: [200], // a stream that never ends is cut at the total timeout
  },
  {
    name: 'comment-only-sse',
    script: (s) => {
      s.write('HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n');
      pump(s, 2, () => chunk(`: ${'k'.repeat(4000)}\n\n`));
    },
    plain: [502, 504],
    stream: [502],
  },
  {
    name: 'giant-line',
    script: (s, stream) => {
      s.write(okHead(stream) + chunk(stream ? 'data: {"x":"' : '{"x":"'));
      pump(s, 2, () => chunk('y'.repeat(16 * 1024)));
    },
    plain: [502, 504],
    stream: [502],
  },
  { name: 'header-flood', script: (s) => s.write(`HTTP/1.1 200 OK\r\n${'x-flood: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n'.repeat(3000)}\r\n`), plain: [502], stream: [502] },
  { name: 'reset-before-status', script: (s) => s.resetAndDestroy(), plain: [502], stream: [502] },
  { name: 'reset-mid-headers', script: (s) => s.write('HTTP/1.1 200 OK\r\ncontent-ty', () => s.resetAndDestroy()), plain: [502], stream: [502] },
  { name: 'reset-after-headers', script: (s, stream) => s.write(okHead(stream), () => s.resetAndDestroy()), plain: [502], stream: [502] },
  { name: 'reset-mid-body', script: (s, stream) => s.write(okHead(stream) + chunk(stream ? firstEvent : '{"choices":[{"mess'), () => setTimeout(() => s.resetAndDestroy(), 50)), plain: [502], stream: [200] },
  { name: 'close-without-answer', script: (s) => s.end(), plain: [502], stream: [502] },
  { name: 'silent', script: () => {}, plain: [504], stream: [504] },
  {
    name: 'never-reads-body',
    script: (s) => s.pause(), // reads the head, never the body, never answers
    plain: [504],
    stream: [504],
    bodyBytes: 4 * 1024 * 1024,
  },
  {
    name: 'slow-drip-headers',
    script: (s, stream) => {
      const answer = okAnswer(stream);
      let at = 0;
      pump(s, 100, () => answer.slice(at, ++at)); // a byte every 100 ms: the head takes 8 s
    },
    plain: [504],
    stream: [504],
  },
  { name: 'garbage-status', script: (s) => s.write('HTTP/1.1 abc def\r\n\r\n'), plain: [502], stream: [502] },
  { name: 'binary-garbage', script: (s) => s.write(Buffer.from([0x00, 0xff, 0x13, 0x37, 0x0d, 0x0a, 0x0d, 0x0a, 0xfe])), plain: [502], stream: [502] },
];

interface Status {
  upstreams: { name: string; bulkhead: { inFlight: number; queued: number }; endpoints: { inFlight: number }[] }[];
}

it(`hostile upstreams: ${CASES.length} byte-level cases × plain and stream, each answered by its deadline, nothing held afterwards`, async (t) => {
  const raw = await startRawUpstream(t, (socket, head) => {
    const name = /^\S+ \/([a-z0-9-]+)\//.exec(head)?.[1] ?? '';
    const stream = /\r\nx-mode: stream\r\n/i.test(head);
    CASES.find((c) => c.name === name)?.script(socket, stream);
  });
  const policy = {
    defaults: {
      timeouts: { total: `${TOTAL_MS}ms`, attempt: '2s', firstByte: '1s', streamIdle: '1s' },
      retry: { attempts: 2, backoff: { base: '10ms', max: '10ms' } },
    },
    upstreams: CASES.map((c) => ({ name: c.name, url: `${raw.url}/${c.name}`, limits: { maxAnswerBytes: '1Mi', maxStreamHeadBytes: '64Ki' } })),
  };
  const sidecar = await spawnSidecar(t, stringify(policy));
  const pid = sidecar.child.pid!;
  const baseRss = rssBytes(pid);
  const baseFds = openFds(pid);
  const sampler = sampleRss(pid);
  const agent = new Agent({ keepAlive: false, maxSockets: Infinity });
  const runs = CASES.flatMap((c) => [false, true].map((stream) => ({ c, stream })));
  const results = await Promise.all(runs.map(({ c, stream }) => send(`${sidecar.dataUrl}/${c.name}/v1/chat/completions`, stream, c.bodyBytes, agent)));
  const peak = sampler.stop();

  const failures: string[] = [];
  results.forEach((r, i) => {
    const { c, stream } = runs[i]!;
    const mode = stream ? 'stream' : 'plain';
    const allowed = stream ? c.stream : c.plain;
    if (r.ms > TOTAL_MS + GRACE_MS) failures.push(`${c.name} (${mode}): answered after ${Math.round(r.ms)} ms`);
    if (!allowed.includes(r.status)) failures.push(`${c.name} (${mode}): status ${r.status}, expected ${allowed.join(' or ')}: ${r.text.slice(0, 200)}`);
  });
  assert.deepEqual(failures, []);

  const status = await settle(
    async () => (await (await fetch(`${sidecar.adminUrl}/status`)).json()) as Status,
    (s) => s.upstreams.every((u) => u.bulkhead.inFlight === 0 && u.bulkhead.queued === 0 && u.endpoints.every((e) => e.inFlight === 0)),
    5000,
  );
  const held = status.upstreams.filter((u) => u.bulkhead.inFlight || u.bulkhead.queued || u.endpoints.some((e) => e.inFlight)).map((u) => u.name);
  assert.deepEqual(held, [], 'slots and endpoint counts back to zero');

  const metrics = await (await fetch(`${sidecar.adminUrl}/metrics`)).text();
  const sum = (name: string, upstream: string) =>
    metrics
      .split('\n')
      .filter((l) => l.startsWith(`${name}{`) && l.includes(`upstream="${upstream}"`))
      .reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
  for (const c of CASES) {
    assert.equal(sum('breakwater_requests_total', c.name), 2, `${c.name}: both requests counted`);
    assert.equal(sum('breakwater_upstream_attempts_total', c.name), raw.byPath.get(`/${c.name}/v1/chat/completions`) ?? 0, `${c.name}: every attempt the upstream saw is counted`);
  }

  raw.closeAll();
  const fds = await settle(() => openFds(pid), (n) => n <= baseFds, 5000);
  t.diagnostic(`${runs.length} requests; RSS ${Math.round(baseRss / MiB)} MiB before, peak ${Math.round(peak / MiB)} MiB; fds ${baseFds} before, ${fds} after`);
  assert.ok(fds <= baseFds, `${fds} fds open, ${baseFds} before`);
  // 36 requests at once, each holding at most limits.maxAnswerBytes (1 MiB) or maxStreamHeadBytes: far below this.
  assert.ok(peak - baseRss <= 96 * MiB, `RSS grew by ${Math.round((peak - baseRss) / MiB)} MiB`);
});

/** A request whose answer is read to its end (or its cut); `ms` is when that happened. */
function send(url: string, stream: boolean, bodyBytes: number | undefined, agent: Agent): Promise<{ status: number; text: string; ms: number }> {
  const started = performance.now();
  const body = JSON.stringify({ model: 'gpt-test', stream, messages: [{ role: 'user', content: bodyBytes ? 'z'.repeat(bodyBytes) : 'hi' }] });
  return new Promise((resolve) => {
    const req = request(url, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'x-mode': stream ? 'stream' : 'plain' } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d.length > 1000 ? '' : d));
      const done = () => resolve({ status: res.statusCode!, text, ms: performance.now() - started });
      res.on('end', done);
      res.on('error', done);
      res.on('aborted', done);
    });
    req.on('error', (err) => resolve({ status: 0, text: err.message, ms: performance.now() - started }));
    req.end(body);
  });
}
