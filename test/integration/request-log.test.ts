/**
 * The request log: a clean success (the addressed upstream, first attempt)
 * is a debug line, since its metrics say all there is; a failure, a retry or
 * a fallback is an info line. At debug every request has its line.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { chat, post, startMock, startRig } from '../support/harness.js';

const INFO = 30;
const DEBUG = 20;
const requestLines = (logs: Record<string, unknown>[]) => logs.filter((l) => l.msg === 'request');

describe('the request log', () => {
  it('logs a clean success at debug only, and a failure or a retried request at info', async (t) => {
    const mock = await startMock(t);
    const rig = await startRig(t, { upstreams: [{ name: 'primary', url: mock.url, retry: { attempts: 2, backoff: { base: '1ms', max: '1ms' } } }] });
    assert.equal((await post(rig.url('/primary/v1/chat/completions'), chat())).status, 200);
    assert.deepEqual(requestLines(rig.logs), [], 'no line for a clean success at info');

    mock.enqueue({ kind: 'status', status: 503 });
    assert.equal((await post(rig.url('/primary/v1/chat/completions'), chat())).status, 200);
    mock.defaultBehavior = { kind: 'status', status: 400 };
    assert.equal((await post(rig.url('/primary/v1/chat/completions'), chat())).status, 400);
    const lines = requestLines(rig.logs);
    assert.deepEqual(lines.map((l) => [l.level, l.status, l.attempts]), [[INFO, 200, 2], [INFO, 400, 1]], 'the retried success and the failure');
  });

  it('logs every request at debug', async (t) => {
    const mock = await startMock(t);
    const rig = await startRig(t, { upstreams: [{ name: 'primary', url: mock.url }] }, 'debug');
    assert.equal((await post(rig.url('/primary/v1/chat/completions'), chat())).status, 200);
    assert.deepEqual(requestLines(rig.logs).map((l) => [l.level, l.status, l.outcome]), [[DEBUG, 200, 'ok']]);
  });
});
