/**
 * Where an upstream's credential comes from (red team, issue 26): the
 * controller's snapshot when it sends credentials (a deleted Secret is then
 * missing, never the value the pod started with), the injector's environment
 * only from a controller that sends none; a value that cannot be a header is
 * missing, named; a snapshot with a value too long to be a key keeps the rest.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { readSnapshot, secretEnvName, type ConfigVersion, type PolicySpec } from '../../api/index.js';
import { validatePolicy } from '../../api/index.js';
import { compileConfig } from '../../sidecar/config/runtime-config.js';

const version: ConfigVersion = { source: 'controller', policy: 'shop/chat', generation: 1, hash: 'h' };
const verdict = validatePolicy({ upstreams: [{ name: 'a', url: 'http://127.0.0.1:9', auth: { secretRef: { name: 'keys', key: 'token' } } }] });
assert.ok(verdict.ok);
const spec: PolicySpec = verdict.spec;
const auth = (credentials?: Record<string, string>) => compileConfig(spec, version, credentials).upstreams.get('a')!.auth;

describe('an upstream credential from a Secret', () => {
  it('comes from the snapshot when the controller sends credentials, and a deleted Secret is missing, not the value the pod started with', (t) => {
    process.env[secretEnvName('keys', 'token')] = 'sk-from-pod-start';
    t.after(() => delete process.env[secretEnvName('keys', 'token')]);
    assert.deepEqual(auth({ 'keys/token': 'sk-now' }), { header: 'Authorization', value: 'Bearer sk-now' });
    assert.deepEqual(auth({}), { header: 'Authorization', missing: 'Secret keys, key token' }, 'deleted: missing');
    assert.deepEqual(auth({ 'keys/token': '' }), { header: 'Authorization', missing: 'Secret keys, key token' }, 'emptied: missing');
    assert.deepEqual(auth(undefined), { header: 'Authorization', value: 'Bearer sk-from-pod-start' }, 'a controller that sends no credentials: the environment');
  });

  it('is missing, named, when its value cannot be a header (a line break, a control character)', () => {
    for (const value of ['sk-a\r\nx-injected: 1', 'sk-a\nb', 'sk\u0000']) assert.match(String(auth({ 'keys/token': value })?.missing), /Secret keys, key token \(its value is not a valid header value/, JSON.stringify(value));
  });

  it('drops a value too long to be a key from a snapshot, and keeps the snapshot', () => {
    const read = readSnapshot(JSON.stringify({ version, spec: {}, credentials: { 'keys/token': 'x'.repeat(20_000), 'keys/other': 'sk-ok' } }));
    assert.ok(read.ok);
    assert.deepEqual(read.ok && read.snapshot.credentials, { 'keys/other': 'sk-ok' });
    assert.equal(readSnapshot(JSON.stringify({ version, spec: {}, credentials: { a: 1 } })).ok, false, 'not strings: not a snapshot');
  });
});
