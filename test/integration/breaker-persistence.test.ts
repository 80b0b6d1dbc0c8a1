/**
 * Breakers that survive a restart, on a real sidecar process: killed (SIGKILL,
 * no drain) with an open breaker and restarted within openFor, it sends
 * nothing to that upstream until the breaker's half-open time, then probes.
 * A state file that is not a regular file (a FIFO) is refused, and the
 * sidecar starts with empty state instead of waiting for a writer forever.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { until } from '../support/until.js';
import { chat, post, startMock } from '../support/harness.js';
import { startSidecarProcess, writePolicy } from '../support/sidecar-process.js';


describe('breaker state across a sidecar restart', () => {
  it('a sidecar killed with an open breaker and restarted sends 0 requests upstream until half-open', async (t) => {
    const mock = await startMock(t);
    mock.defaultBehavior = { kind: 'status', status: 503 };
    const openForMs = 4000;
    const policy = writePolicy(`upstreams: [{name: model, url: "${mock.url}", retry: {attempts: 1}, circuitBreaker: {consecutiveFailures: 2, openFor: ${openForMs}ms, maxOpenFor: 8s}}]\n`);
    const state = join(mkdtempSync(join(tmpdir(), 'breakwater-state-')), 'breakers.json');
    const args = ['--policy', policy, '--state-file', state];
    const url = (s: { dataUrl: string }) => `${s.dataUrl}/model/v1/chat/completions`;

    const first = await startSidecarProcess(t, args, policy);
    for (let i = 0; i < 2; i++) await post(url(first), chat());
    assert.equal((await post(url(first), chat())).json().error.code, 'circuit_open');
    const openedAt = Date.now();
    await until('the open breaker saved', () => existsSync(state) && readFileSync(state, 'utf8').includes('"open"'));
    first.child.kill('SIGKILL');
    await first.exited;
    const sent = mock.requests.length;
    assert.equal(sent, 2);

    const second = await startSidecarProcess(t, args, policy);
    const restartedMs = Date.now() - openedAt;
    assert.ok(restartedMs < openForMs, `restarted within openFor (${restartedMs} ms)`);
    mock.defaultBehavior = { kind: 'ok' }; // healed: only the breaker keeps requests away now
    const refused = await post(url(second), chat());
    assert.equal(refused.status, 503);
    assert.equal(refused.json().error.code, 'circuit_open');
    const retryAfter = Number(refused.headers.get('retry-after'));
    assert.ok(retryAfter >= 1 && retryAfter <= Math.ceil(openForMs / 1000), `Retry-After ${retryAfter} s: the open time left`);
    for (let i = 0; i < 20; i++) await post(url(second), chat());
    assert.equal(mock.requests.length, sent, 'nothing reached the upstream while the restored breaker was open');

    await new Promise((r) => setTimeout(r, openForMs + 100 - (Date.now() - openedAt))); // the saved open time is over
    const probe = await post(url(second), chat());
    assert.equal(probe.status, 200, 'after the saved open time, a probe goes through');
    assert.equal(mock.requests.length, sent + 1);
    assert.ok(second.logs.some((l) => l.msg === 'circuit breaker transition' && l.reason === 'restored after a restart'));
  });

  // Without the fix the sidecar blocks in read(2) on the FIFO before it listens: the test's timeout is how that hang shows.
  it('a FIFO at --state-file is refused and logged; the sidecar becomes ready with empty state and replaces it on save', { timeout: 60_000 }, async (t) => {
    const mock = await startMock(t);
    const policy = writePolicy(`upstreams: [{name: model, url: "${mock.url}"}]\nshutdown: {drainTimeout: 1s}\n`);
    const state = join(mkdtempSync(join(tmpdir(), 'breakwater-state-')), 'state.json');
    execFileSync('mkfifo', [state]);

    const sidecar = await startSidecarProcess(t, ['--policy', policy, '--state-file', state], policy);
    assert.equal((await fetch(`${sidecar.adminUrl}/readyz`)).status, 200, 'ready');
    assert.equal((await post(`${sidecar.dataUrl}/model/v1/chat/completions`, chat())).status, 200);
    const refused = sidecar.logs.find((l) => l.msg === 'ignoring the kept state: not a regular file');
    assert.ok(refused, 'the refusal is logged');
    assert.equal(refused.level, 40, 'as a warning');

    sidecar.child.kill('SIGTERM'); // a drain saves the state
    assert.equal(await sidecar.exited, 0);
    assert.ok(lstatSync(state).isFile(), 'the FIFO was replaced by a regular file, never written through');
  });
});
