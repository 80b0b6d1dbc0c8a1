/**
 * 1,000 requests against a primary that fails half the time at random, in
 * every way it knows: each request gets exactly one answer, none outlives its
 * total timeout, and the sidecar's counters add up to what was sent and seen.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import type { Behavior } from '../../sidecar/mock-upstream/mock-upstream.js';
import { chat, startMock, startRig } from '../support/harness.js';

const REQUESTS = 1000;
const CONCURRENCY = 40;
const TOTAL_MS = 1500;

it('answers every one of 1,000 requests exactly once, in time, with counters that add up', async (t) => {
  const failures: Behavior[] = [
    { kind: 'status', status: 503 },
    { kind: 'status', status: 500 },
    { kind: 'status', status: 429, headers: { 'retry-after-ms': '20' } },
    { kind: 'reset' },
    { kind: 'hang' },
    { kind: 'headers-then-hang' },
    { kind: 'stream-then-reset', afterChunks: 1 },
  ];
  const mock = await startMock(t, { failPercent: 50, failure: failures });
  const rig = await startRig(t, {
    upstreams: [
      {
        name: 'primary',
        url: mock.url,
        timeouts: { total: `${TOTAL_MS}ms`, firstByte: '150ms', streamIdle: '150ms' },
        retry: { attempts: 3, backoff: { base: '5ms', max: '40ms' } },
        circuitBreaker: { consecutiveFailures: 8, openFor: '100ms', maxOpenFor: '400ms' },
        bulkhead: { maxConcurrent: 32, maxQueue: 64, queueTimeout: '1s' },
      },
    ],
  });

  const answers = new Map<number, { status: number; ms: number; errorEvent: boolean }>();
  let answeredTwice = 0;
  let next = 0;
  const worker = async () => {
    while (next < REQUESTS) {
      const id = next++;
      const stream = id % 4 === 0;
      const started = performance.now();
      const res = await fetch(rig.url('/primary/v1/chat/completions'), { method: 'POST', body: chat({ stream, id }), headers: { 'content-type': 'application/json' } });
      const text = await res.text();
      if (answers.has(id)) answeredTwice++;
      answers.set(id, { status: res.status, ms: performance.now() - started, errorEvent: stream && text.includes('"error"') });
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));

  assert.equal(answers.size, REQUESTS);
  assert.equal(answeredTwice, 0);
  const slowest = Math.max(...[...answers.values()].map((a) => a.ms));
  assert.ok(slowest < TOTAL_MS + 500, `the slowest answer took ${slowest} ms, past the ${TOTAL_MS} ms total timeout`);

  const byStatus = new Map<number, number>();
  for (const a of answers.values()) byStatus.set(a.status, (byStatus.get(a.status) ?? 0) + 1);
  const succeeded = [...answers.values()].filter((a) => a.status === 200 && !a.errorEvent).length;
  t.diagnostic(`answers by status: ${JSON.stringify(Object.fromEntries(byStatus))}; clean successes ${succeeded}; slowest ${slowest.toFixed(0)} ms; upstream attempts ${mock.requests.length}`);

  assert.equal(await rig.metric('breakwater_requests_total'), REQUESTS, 'one counted outcome per request');
  assert.equal(await rig.metric('breakwater_requests_total', { outcome: 'ok' }), succeeded, 'ok outcomes = clean successes the clients saw');
  assert.equal(await rig.metric('breakwater_requests_total', { outcome: 'cancelled' }), 0);
  assert.equal(await rig.metric('breakwater_upstream_attempts_total'), mock.requests.length, 'every counted attempt reached the upstream');
  const retries = await rig.metric('breakwater_retries_total');
  // A stream recovery runs the chain again: its first attempt is neither a request's first attempt nor a retry.
  const recoveries = (await rig.metric('breakwater_stream_recoveries_total')) - (await rig.metric('breakwater_stream_recoveries_total', { result: 'refused' }));
  const admittedPlusRetries = REQUESTS - (await rig.metric('breakwater_requests_total', { class: 'unavailable' })) + retries;
  assert.ok(mock.requests.length >= admittedPlusRetries && mock.requests.length <= admittedPlusRetries + recoveries, `attempts (${mock.requests.length}) = requests that got past admission + retries (${admittedPlusRetries}) + at most one per recovery (${recoveries})`);
  assert.ok(retries > 0, 'failures were retried');
  assert.ok((await rig.metric('breakwater_circuit_breaker_transitions_total', { to: 'open' })) > 0, 'a 50% failure rate trips the default 50% failure-rate rule');
});
