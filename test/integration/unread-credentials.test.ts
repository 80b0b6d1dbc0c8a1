/**
 * A controller that cannot read a Secret says its keys are unread, and the
 * sidecar keeps the value it had, in force and in the copy it keeps on disk
 * (red team 26, F4): a controller without `get secrets`, or one that just
 * started, never takes a working key away. A controller that knows a key is
 * gone takes it away. The sidecar's controller stream against a fake
 * controller (HTTPS on 127.0.0.1, a throwaway self-signed certificate) that
 * sends the snapshots a new controller would.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { pino } from 'pino';
import type { ConfigVersion } from '../../api/index.js';
import { followController, type UpstreamConfig } from '../../sidecar/config/index.js';
import { until } from '../support/until.js';

const version: ConfigVersion = { source: 'controller', policy: 'shop/chat', generation: 1, hash: 'h1' };
const spec = { upstreams: [{ name: 'openai', url: 'http://127.0.0.1:9', auth: { secretRef: { name: 'key', key: 'apiKey' } } }] };
const snapshot = (fields: object) => `event: snapshot\ndata: ${JSON.stringify({ version, spec, ...fields })}\n\n`;

/** A controller whose config stream the test writes to. */
async function fakeController(t: TestContext): Promise<{ url: string; ca: string; stream: Promise<ServerResponse> }> {
  const dir = mkdtempSync(join(tmpdir(), 'breakwater-fake-controller-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'key.pem', '-out', 'cert.pem', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { cwd: dir, stdio: 'ignore' });
  const ca = readFileSync(join(dir, 'cert.pem'), 'utf8');
  let opened!: (res: ServerResponse) => void;
  const stream = new Promise<ServerResponse>((resolve) => (opened = resolve));
  const server = createServer({ cert: ca, key: readFileSync(join(dir, 'key.pem')) }, (req, res) => {
    if (req.method === 'POST') return void req.resume().on('end', () => res.writeHead(204).end());
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    opened(res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  return { url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`, ca, stream };
}

describe('a Secret key the controller has not read', () => {
  it('keeps the value the sidecar had, in force and on disk; a key the controller knows is gone is dropped', async (t) => {
    const controller = await fakeController(t);
    const dir = mkdtempSync(join(tmpdir(), 'breakwater-pod-'));
    writeFileSync(join(dir, 'token'), 'pod-token');
    const cacheFile = join(dir, 'config.json');
    const auths: UpstreamConfig['auth'][] = [];
    const source = followController({
      urls: [controller.url],
      pod: 'chat-1',
      tokenFile: join(dir, 'token'),
      ca: controller.ca,
      cacheFile,
      apply: (config) => {
        auths.push(config.upstreams.get('openai')!.auth);
        return { ok: true };
      },
      breakers: () => ({}),
      log: pino({ level: 'silent' }),
    });
    t.after(() => source.stop());
    const stream = await controller.stream;

    stream.write(snapshot({ credentials: { 'key/apiKey': 'sk-live' } }));
    await until('the key in force', () => auths.length === 1);
    // A controller that cannot read the Secret (403), as a new one without `get secrets` would send: the first
    // changes nothing (it is the snapshot in force once the key is kept), the second something else.
    stream.write(snapshot({ credentials: {}, unreadCredentials: ['key/apiKey'] }));
    stream.write(snapshot({ credentials: { 'key/other': 'sk-x' }, unreadCredentials: ['key/apiKey'] }));
    await until('the second applied', () => auths.length === 2);
    assert.deepEqual(auths[1], { header: 'Authorization', value: 'Bearer sk-live' }, 'the key it had stays in force');
    assert.equal(JSON.parse(readFileSync(cacheFile, 'utf8')).credentials['key/apiKey'], 'sk-live', 'and in the copy kept on disk');

    // The controller reads the Secret and finds it deleted: the key goes.
    stream.write(snapshot({ credentials: {}, credentialProblems: { 'key/apiKey': 'does not exist' } }));
    await until('the deletion applied', () => auths.length === 3);
    assert.deepEqual(auths[2], { header: 'Authorization', missing: 'Secret key, key apiKey', problem: 'does not exist' });
    assert.ok(!readFileSync(cacheFile, 'utf8').includes('sk-live'));
  });
});
