/**
 * Where an upstream's credential comes from (red team, issue 26): the
 * controller's snapshot when it sends credentials (a deleted Secret is then
 * missing, never the value the pod started with), the injector's environment
 * only from a controller that sends none. A key the snapshot has no usable
 * value for is missing, named, with why the controller or the sidecar says so;
 * a key named `__proto__` is a key like any other; a snapshot with an
 * unusable value keeps the rest; a key the controller has not read keeps the
 * value the snapshot in force had.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { readSnapshot, secretEnvName, type ConfigVersion, type PolicySpec, type SnapshotCredentials, type UncheckedSnapshot } from '../../api/index.js';
import { validatePolicy } from '../../api/index.js';
import { compileConfig } from '../../sidecar/config/compile-config.js';
import { keepUnreadCredentials } from '../../sidecar/config/unread-credentials.js';

const version: ConfigVersion = { source: 'controller', policy: 'shop/chat', generation: 1, hash: 'h' };
const specWith = (key: string): PolicySpec => {
  const verdict = validatePolicy({ upstreams: [{ name: 'a', url: 'http://127.0.0.1:9', auth: { secretRef: { name: 'keys', key } } }] });
  assert.ok(verdict.ok);
  return verdict.spec;
};
const auth = (from?: SnapshotCredentials, key = 'token') => compileConfig(specWith(key), version, from).upstreams.get('a')!.auth;
const missing = (problem: string, key = 'token') => ({ header: 'Authorization', missing: `Secret keys, key ${key}`, problem });

describe('an upstream credential from a Secret', () => {
  it('comes from the snapshot when the controller sends credentials, and a deleted Secret is missing, not the value the pod started with', (t) => {
    process.env[secretEnvName('keys', 'token')] = 'sk-from-pod-start';
    t.after(() => delete process.env[secretEnvName('keys', 'token')]);
    assert.deepEqual(auth({ credentials: { 'keys/token': 'sk-now' } }), { header: 'Authorization', value: 'Bearer sk-now' });
    assert.deepEqual(auth({ credentials: {} }), missing('does not exist'), 'deleted: missing');
    assert.deepEqual(auth(undefined), { header: 'Authorization', value: 'Bearer sk-from-pod-start' }, 'a controller that sends no credentials: the environment');
  });

  it('is missing with the controller\'s reason (not labelled, unusable), or as not read yet', () => {
    const notLabelled = 'is not usable: Secret keys is not labelled breakwater.dev/credential=true, so Breakwater may not send its values';
    assert.deepEqual(auth({ credentials: {}, credentialProblems: { 'keys/token': notLabelled } }), missing(notLabelled));
    assert.deepEqual(auth({ credentials: {}, unreadCredentials: ['keys/token'] }), missing('has not been read by the controller yet'));
  });

  it('is missing, named, when its value is no usable credential (blank, a line break, a control character, past ASCII)', () => {
    for (const [value, why] of [['  \n', /empty/], ['sk-a\r\nx-injected: 1', /line break/], ['sk-a\nb', /line break/], ['sk\u0000', /control character/], ['sk-\u00e9', /outside ASCII/]] as const) {
      const got = auth({ credentials: { 'keys/token': value } });
      assert.equal(got?.missing, 'Secret keys, key token', JSON.stringify(value));
      assert.match(String(got?.problem), /^is not usable: /);
      assert.match(String(got?.problem), why);
    }
  });

  it('takes a snapshot that says a key named __proto__ does not exist, and only that upstream waits (red team 26, F2)', () => {
    const read = readSnapshot(JSON.stringify({ version, spec: {}, credentials: { 'keys/apiKey': 'sk-ok' }, credentialProblems: { 'keys/__proto__': 'does not exist' } }));
    assert.ok(read.ok);
    assert.deepEqual(auth(read.ok ? read.snapshot : undefined, '__proto__'), missing('does not exist', '__proto__'));
  });
});

describe('a snapshot\'s credential fields', () => {
  it('keep the snapshot when a value is unusable, saying why for that key alone', () => {
    const read = readSnapshot(JSON.stringify({ version, spec: {}, credentials: { 'keys/token': 'x'.repeat(20_000), 'keys/other': ' sk-ok\n' } }));
    assert.ok(read.ok);
    assert.deepEqual(read.ok && read.snapshot.credentials, { 'keys/other': 'sk-ok' });
    assert.deepEqual(read.ok && read.snapshot.credentialProblems, { 'keys/token': 'is not usable: it is longer than 16 KiB' });
  });

  it('are refused when they are not what the protocol says (not strings, too many), and reasons are cut', () => {
    assert.equal(readSnapshot(JSON.stringify({ version, spec: {}, credentials: { a: 1 } })).ok, false, 'not strings: not a snapshot');
    assert.equal(readSnapshot(JSON.stringify({ version, spec: {}, credentials: { 'keys/__proto__': {} } })).ok, false);
    assert.equal(readSnapshot(JSON.stringify({ version, spec: {}, credentials: {}, credentialProblems: ['x'] })).ok, false);
    assert.equal(readSnapshot(JSON.stringify({ version, spec: {}, credentials: {}, unreadCredentials: 'keys/token' })).ok, false);
    assert.equal(readSnapshot(JSON.stringify({ version, spec: {}, credentials: {}, unreadCredentials: Array.from({ length: 65 }, (_, i) => `k/${i}`) })).ok, false);
    const long = readSnapshot(JSON.stringify({ version, spec: {}, credentials: {}, credentialProblems: { 'keys/token': 'y'.repeat(5000) } }));
    assert.ok(long.ok);
    assert.equal(long.ok && long.snapshot.credentialProblems!['keys/token']!.length, 512);
  });
});

describe('a key the controller has not read (red team 26, F4)', () => {
  const inForce: UncheckedSnapshot = { version, spec: {}, credentials: { 'keys/token': 'sk-live', 'keys/gone': 'sk-gone' } };

  it('keeps the value the snapshot in force had, and the carried snapshot says nothing unread of it', () => {
    const next = keepUnreadCredentials(inForce, { version, spec: {}, credentials: {}, unreadCredentials: ['keys/token'] });
    assert.deepEqual(next, { version, spec: {}, credentials: { 'keys/token': 'sk-live' } });
    assert.deepEqual(auth(next), { header: 'Authorization', value: 'Bearer sk-live' });
  });

  it('does not keep a value the controller knows is gone, or one the snapshot in force did not have', () => {
    const told = keepUnreadCredentials(inForce, { version, spec: {}, credentials: {}, credentialProblems: { 'keys/gone': 'does not exist' }, unreadCredentials: ['keys/new'] });
    assert.deepEqual(told.credentials, {});
    assert.deepEqual(told.unreadCredentials, ['keys/new']);
    assert.deepEqual(auth(told, 'new'), missing('has not been read by the controller yet', 'new'));
    assert.deepEqual(keepUnreadCredentials(undefined, { version, spec: {}, credentials: {}, unreadCredentials: ['keys/token'] }).credentials, {}, 'nothing in force: nothing kept');
  });

  it('keeps a key named __proto__ as an own key', () => {
    const next = keepUnreadCredentials({ version, spec: {}, credentials: JSON.parse('{"keys/x":"a","__proto__":"sk-p"}') }, { version, spec: {}, credentials: {}, unreadCredentials: ['__proto__'] });
    assert.ok(Object.hasOwn(next.credentials!, '__proto__'));
    assert.equal(Object.getPrototypeOf(next.credentials), Object.prototype);
  });
});
