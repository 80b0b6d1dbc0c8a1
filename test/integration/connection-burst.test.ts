/**
 * A burst of an app's connections while the sidecar cannot accept them (its
 * event loop busy: here, the process stopped). The kernel must hold them
 * until the sidecar accepts: with Node's default listen backlog (511) it
 * dropped the rest of the handshakes, and under a real burst (2,000 streams
 * opening at once, bench/) their requests arrived seconds late and some met
 * the headers timeout as a 408. Every connection here must be established
 * while the sidecar is stopped, and every request answered once it runs.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { stringify } from 'yaml';
import { chat, post, startMock } from '../support/harness.js';
import { spawnSidecar } from '../support/sidecar-process.js';

const BURST = 1500;
/** How long the connections get to be established while the sidecar is stopped (no retransmission comes this soon). */
const HANDSHAKE_WAIT_MS = 500;
/** Every request is answered by then once the sidecar runs again (the answers are instant). */
const ANSWER_DEADLINE_MS = 20_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('a burst of connections', () => {
  it(`queues ${BURST} connections the sidecar cannot accept yet, and answers every request on them once it can`, async (t) => {
    const mock = await startMock(t);
    const sidecar = await spawnSidecar(t, stringify({ defaults: { bulkhead: { maxConcurrent: BURST, maxQueue: BURST } }, upstreams: [{ name: 'primary', url: mock.url }] }));
    assert.equal((await post(`${sidecar.dataUrl}/primary/v1/chat/completions`, chat())).status, 200);
    const { hostname, port } = new URL(sidecar.dataUrl);
    const pid = sidecar.child.pid!;
    // The kernel caps any listen backlog at net.core.somaxconn (4096 on current kernels).
    const expected = Math.min(BURST, Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8')) + 1);

    const sockets: Socket[] = [];
    t.after(() => {
      for (const socket of sockets) socket.destroy();
      try {
        process.kill(pid, 'SIGCONT'); // never leave it stopped, whatever failed
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err; // already gone
      }
    });
    process.kill(pid, 'SIGSTOP');
    let established = 0;
    const statuses: number[] = [];
    const request = `POST /primary/v1/chat/completions HTTP/1.1\r\nhost: ${hostname}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(chat())}\r\nconnection: close\r\n\r\n${chat()}`;
    for (let i = 0; i < BURST; i++) {
      const socket = connect(Number(port), hostname);
      sockets.push(socket);
      socket.on('error', () => {});
      socket.once('connect', () => {
        established++;
        socket.write(request);
      });
      let head = '';
      socket.on('data', (chunk: Buffer) => {
        if (head.includes('\r\n')) return;
        head += chunk.toString('latin1');
        const status = /^HTTP\/1\.1 (\d{3})/.exec(head);
        if (status) statuses.push(Number(status[1]));
      });
    }
    await sleep(HANDSHAKE_WAIT_MS);
    const whileStopped = established;
    process.kill(pid, 'SIGCONT');
    const deadline = Date.now() + ANSWER_DEADLINE_MS;
    while (statuses.length < BURST && Date.now() < deadline) await sleep(50);

    t.diagnostic(`${whileStopped} of ${BURST} connections established while the sidecar was stopped; ${statuses.length} answered`);
    assert.ok(whileStopped >= expected, `only ${whileStopped} of ${BURST} connections were queued for the stopped sidecar (${expected} expected): the listen backlog is too short`);
    assert.equal(statuses.length, BURST, 'every request got an answer');
    assert.deepEqual([...new Set(statuses)], [200], 'every answer a 200: none refused, none timed out');
  });
});
