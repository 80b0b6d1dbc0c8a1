/**
 * Fuzzing the upstream side over real sockets: fast-check writes byte-level
 * reply scripts (status lines, headers, chunked and SSE framing, garbage,
 * pauses, resets, silence), and for each the app sends a plain or streamed
 * request with its credentials, to Chat Completions, the Responses API or a
 * pass-through path. The fragments include interim and unrequested statuses
 * (bare 101, 103, past 599) and the events of Responses and tool-call
 * streams. Invariants: one answer by the deadline, no crash, every bulkhead
 * slot and endpoint count back to zero, and the app's credentials never
 * reach the fallback tier. BREAKWATER_FUZZ_RUNS sets the number of scripts
 * (default 40; `npm run fuzz` runs many more).
 */
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { it } from 'node:test';
import fc from 'fast-check';
import { chat, startMock, startRig } from '../support/harness.js';
import { startRawUpstream } from '../support/raw-upstream.js';

const RUNS = Number(process.env.BREAKWATER_FUZZ_RUNS ?? 40);
const TOTAL_MS = 800;
const CREDENTIALS = { authorization: 'Bearer sk-app', 'x-api-key': 'app-key', cookie: 'session=app' };

type Step = { write: string | Uint8Array } | { pause: number } | { end: true } | { reset: true };

const fragment = fc.oneof(
  fc.constantFrom(
    'HTTP/1.1 200 OK\r\n',
    'HTTP/1.1 503 Service Unavailable\r\n',
    'HTTP/1.1 429 Too Many Requests\r\nretry-after: 0\r\n',
    'HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n',
    'HTTP/1.1 100 Continue\r\n\r\n',
    'HTTP/1.1 101 Switching Protocols\r\n\r\n',
    'HTTP/1.1 103 Early Hints\r\nlink: </x>\r\n\r\n',
    'HTTP/1.1 799 Odd\r\n',
    'event: response.created\ndata: {"type":"response.created","sequence_number":0,"response":{"id":"r","status":"in_progress","output":[]}}\n\n',
    'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","sequence_number":3,"item_id":"m","output_index":0,"content_index":0,"delta":"x"}\n\n',
    'event: response.function_call_arguments.delta\ndata: {"type":"response.function_call_arguments.delta","sequence_number":4,"item_id":"f","output_index":1,"delta":"{\\"a"}\n\n',
    'event: response.completed\ndata: {"type":"response.completed","sequence_number":9,"response":{"id":"r","status":"completed","output":[],"usage":{"input_tokens":1,"output_tokens":2}}}\n\n',
    'event: response.failed\ndata: {"type":"response.failed","sequence_number":9,"response":{"id":"r","status":"failed","error":{"code":"server_error","message":"x"}}}\n\n',
    'event: error\ndata: {"type":"error","code":"rate_limit_exceeded","message":"slow down","sequence_number":1}\n\n',
    'data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c","type":"function","function":{"name":"f","arguments":""}}]}}]}\n\n',
    'data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\\"q\\":"}}]}}]}\n\n',
    'data: {"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}\n\n',
    'data: {"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1e300}}\n\n',
    'content-type: text/event-stream\r\n',
    'content-type: application/json\r\n',
    'content-type: application/x-ndjson\r\n',
    'transfer-encoding: chunked\r\n',
    'content-length: 5\r\n',
    'content-length: 100000000\r\n',
    '\r\n',
    '5\r\nhello\r\n',
    'ffffffff\r\n',
    '0\r\n\r\n',
    'data: {"choices":[{"delta":{"content":"x"}}]}\n\n',
    ': keep-alive\n\n',
    'data: [DONE]\n\n',
    '{"choices":[{"message":{"content":"hi"}}]}',
  ),
  fc.string({ maxLength: 48 }),
  fc.uint8Array({ maxLength: 48 }),
);
const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 6, arbitrary: fragment.map((write) => ({ write })) },
  { weight: 1, arbitrary: fc.integer({ min: 10, max: 120 }).map((pause) => ({ pause })) },
  { weight: 1, arbitrary: fc.constant({ end: true as const }) },
  { weight: 1, arbitrary: fc.constant({ reset: true as const }) },
);

interface Status {
  upstreams: { name: string; bulkhead: { inFlight: number; queued: number }; endpoints: { inFlight: number }[] }[];
}

it(`answers every one of ${RUNS} generated upstream scripts by its deadline, leaks nothing, and keeps the app's credentials home`, async (t) => {
  let script: Step[] = [];
  const upstream = await startRawUpstream(t, (socket: Socket) => {
    const steps = [...script];
    void (async () => {
      for (const s of steps) {
        if (socket.destroyed) return;
        if ('write' in s) socket.write(s.write);
        else if ('pause' in s) await new Promise((r) => setTimeout(r, s.pause));
        else if ('end' in s) return void socket.end();
        else return void socket.destroy();
      }
      // then silence: the sidecar's timers must end it
    })();
  });
  const fallback = await startMock(t);
  const rig = await startRig(t, {
    upstreams: [
      {
        name: 'primary',
        url: upstream.url,
        timeouts: { total: `${TOTAL_MS}ms`, attempt: '600ms', firstByte: '300ms', streamIdle: '200ms' },
        retry: { attempts: 2, backoff: { base: '5ms', max: '10ms' } },
        circuitBreaker: { consecutiveFailures: 0, failureRate: { threshold: 0 } },
        limits: { maxAnswerBytes: '64Ki', maxStreamHeadBytes: '16Ki' },
        fallback: [{ upstream: 'other', when: ['unavailable', 'invalid-response'] }],
      },
      { name: 'other', url: fallback.url },
    ],
  });
  let slowest = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(step, { maxLength: 12 }), fc.boolean(), fc.constantFrom('/v1/chat/completions', '/v1/responses', '/v1/embeddings'), async (steps, stream, path) => {
      script = steps;
      const started = performance.now();
      const answer = await Promise.race([
        fetch(rig.url(`/primary${path}`), { method: 'POST', body: chat({ stream }), headers: { 'content-type': 'application/json', ...CREDENTIALS } })
          .then(async (res) => ({ status: res.status, text: await res.text().catch(() => '') }))
          .catch((err: Error) => ({ status: 0, text: err.message })),
        new Promise<undefined>((resolve) => setTimeout(resolve, TOTAL_MS + 3000)),
      ]);
      assert.ok(answer, `no answer within ${TOTAL_MS + 3000} ms for ${path} ${JSON.stringify(steps)}`);
      slowest = Math.max(slowest, performance.now() - started);
      let status: Status | undefined;
      for (let i = 0; i < 40; i++) {
        status = (await (await fetch(`${rig.sidecar.adminUrl}/status`)).json()) as Status;
        if (status.upstreams.every((u) => u.bulkhead.inFlight === 0 && u.endpoints.every((e) => e.inFlight === 0))) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      for (const u of status!.upstreams) {
        assert.equal(u.bulkhead.inFlight, 0, `${u.name}: a bulkhead slot leaked for ${JSON.stringify(steps)}`);
        assert.equal(u.endpoints[0]!.inFlight, 0, `${u.name}: an endpoint count leaked`);
      }
      for (const r of fallback.requests) for (const h of Object.keys(CREDENTIALS)) assert.equal(r.headers[h], undefined, `${h} reached the fallback tier`);
    }),
    { numRuns: RUNS },
  );
  t.diagnostic(`${RUNS} scripts; slowest answer ${Math.round(slowest)} ms (total timeout ${TOTAL_MS} ms); ${upstream.requests} upstream attempts, ${fallback.requests.length} fallbacks`);
  assert.ok((await fetch(`${rig.sidecar.adminUrl}/healthz`)).ok, 'the sidecar is alive');
});
