/**
 * What the controller knows of the Secret keys policies name, and what it
 * tells pods of them (red team 26): a Secret is used only when labelled
 * breakwater.dev/credential=true and not a cluster token (F7); keys are own
 * keys (F2, F10); an unusable value is never sent (F1, F6); a Secret not read
 * yet is unread, not absent (F4), and pods' snapshots wait for its first read,
 * briefly (F3, F5); what no pod wants any more is forgotten (F8). SecretValues
 * on a fake reader whose reads the test settles, and a Reconciler on fake API
 * clients whose config stream is a fake response.
 */
import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import { describe, it, type TestContext } from 'node:test';
import type { CoreV1Api, CustomObjectsApi, V1Secret } from '@kubernetes/client-node';
import { pino } from 'pino';
import type { EventRecorder } from '../../controller/event-recorder.js';
import type { PolicyObject } from '../../controller/policy-object.js';
import { Reconciler } from '../../controller/reconciler.js';
import type { ReportRecorder } from '../../controller/report-store.js';
import { credentialIn, secretRead, SecretValues, type SecretRead } from '../../controller/secret-values.js';

const silent = pino({ level: 'silent' });
const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');
const labelled = { 'breakwater.dev/credential': 'true' };
const secret = (data: Record<string, string>, labels: Record<string, string> = labelled, type = 'Opaque'): V1Secret => ({
  metadata: { name: 'keys', namespace: 'shop', labels },
  type,
  data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, b64(v)])),
});

describe('a Secret as the controller reads it', () => {
  it('is used only when labelled breakwater.dev/credential=true: otherwise no value of it is known, and the reason says to label it (F7)', () => {
    for (const labels of [{}, { 'breakwater.dev/credential': 'false' }, { 'breakwater.dev/credentials': 'true' }] as Record<string, string>[]) {
      const found = credentialIn(secretRead(secret({ password: 'db-root-password' }, labels)), 'password');
      assert.equal(found.value, undefined, JSON.stringify(labels));
      assert.equal(found.problem?.reason, 'SecretNotAllowed');
      assert.match(found.problem!.says, /^is not usable: Secret keys is not labelled breakwater\.dev\/credential=true.*kubectl label secret keys breakwater\.dev\/credential=true/);
      assert.ok(!found.problem!.says.includes('db-root-password'));
    }
    assert.deepEqual(credentialIn(secretRead(secret({ password: 'sk-ok' })), 'password'), { value: 'sk-ok' });
  });

  it('is never used when it is a token for the cluster itself, labelled or not', () => {
    for (const type of ['kubernetes.io/service-account-token', 'bootstrap.kubernetes.io/token']) {
      const found = credentialIn(secretRead(secret({ token: 'eyJhbGciOi' }, labelled, type)), 'token');
      assert.equal(found.problem?.reason, 'SecretNotAllowed', type);
      assert.match(found.problem!.says, /a token for the cluster itself/);
    }
  });

  it('has only its own keys: a key named like an Object.prototype member does not exist unless the Secret has it (F2, F10)', () => {
    const read = secretRead(secret({ apiKey: 'sk-good' }));
    for (const key of ['constructor', '__proto__', 'toString', 'hasOwnProperty']) assert.deepEqual(credentialIn(read, key), { problem: { reason: 'SecretNotFound', says: 'does not exist' } }, key);
    const own = secretRead({ metadata: { name: 'keys', labels: labelled }, data: JSON.parse(`{"__proto__":"${b64('sk-proto')}"}`) });
    assert.deepEqual(credentialIn(own, '__proto__'), { value: 'sk-proto' });
  });

  it('gives no value for a key whose value is no usable credential, and says why (F1, F6)', () => {
    const read = secretRead(secret({ blank: '   \n', crlf: 'sk-one\r\nx-injected: 1', big: 'x'.repeat(900_000), latin: 'sk-\u00e9' }));
    for (const [key, why] of [['blank', /empty/], ['crlf', /line break/], ['big', /longer than 16 KiB/], ['latin', /outside ASCII/]] as const) {
      const found = credentialIn(read, key);
      assert.equal(found.problem?.reason, 'SecretValueUnusable', key);
      assert.match(found.problem!.says, /^is not usable: /);
      assert.match(found.problem!.says, why);
    }
    assert.deepEqual(credentialIn(null, 'apiKey'), { problem: { reason: 'SecretNotFound', says: 'does not exist' } });
  });
});

/** A reader whose reads stay pending until the test settles them; and what was read. */
function fakeReader() {
  const reads: { id: string; settle: (read: SecretRead) => void; fail: (code: number) => void }[] = [];
  const read = (namespace: string, name: string) =>
    new Promise<SecretRead>((resolve, reject) => reads.push({ id: `${namespace}/${name}`, settle: resolve, fail: (code) => reject(Object.assign(new Error(`HTTP ${code}`), { code })) }));
  return { read, reads };
}

const settled = () => new Promise((r) => setImmediate(r));

function values(t: TestContext, wanted: string[] = ['shop/keys'], firstReadWaitMs = 60_000) {
  const reader = fakeReader();
  const changed: string[] = [];
  const secrets = new SecretValues(reader.read, (namespace) => changed.push(namespace), () => wanted, silent, { pollMs: 3_600_000, firstReadWaitMs });
  t.after(() => secrets.close());
  return { secrets, changed, reads: reader.reads, wanted };
}

const ref = { name: 'keys', key: 'apiKey' };

describe('what the controller tells pods of a Secret key', () => {
  it('is unread, not absent, until a first read succeeds; a read the API server refuses (403) leaves it unread, and pods are no longer held for it (F4)', async (t) => {
    const { secrets, changed, reads } = values(t);
    assert.deepEqual(secrets.credentialsFor('shop', [ref]), { fields: { credentials: {}, unreadCredentials: ['keys/apiKey'] }, waiting: true });
    assert.equal(reads.length, 1, 'read at once');
    reads[0]!.fail(403);
    await settled();
    assert.deepEqual(changed, ['shop'], 'the pods waiting are sent their snapshots');
    assert.deepEqual(secrets.credentialsFor('shop', [ref]), { fields: { credentials: {}, unreadCredentials: ['keys/apiKey'] }, waiting: false });
    assert.equal(reads.length, 1, 'not read again on every snapshot (the poll does)');
    void secrets.poll();
    reads[1]!.settle(secretRead(secret({ apiKey: 'sk-live' })));
    await settled();
    assert.deepEqual(secrets.credentialsFor('shop', [ref]), { fields: { credentials: { 'keys/apiKey': 'sk-live' } }, waiting: false });
    // A read that fails later leaves the value known.
    void secrets.poll();
    reads[2]!.fail(503);
    await settled();
    assert.deepEqual(secrets.credentialsFor('shop', [ref]).fields, { credentials: { 'keys/apiKey': 'sk-live' } });
  });

  it('holds pods\' snapshots back for a first read, and lets them go when it ends or at its deadline (F3, F5)', async (t) => {
    const { secrets, changed, reads } = values(t, ['shop/keys'], 30);
    assert.equal(secrets.credentialsFor('shop', [ref]).waiting, true);
    await new Promise((r) => setTimeout(r, 60));
    assert.deepEqual(changed, ['shop'], 'the deadline passed: pods are sent their snapshots');
    assert.deepEqual(secrets.credentialsFor('shop', [ref]), { fields: { credentials: {}, unreadCredentials: ['keys/apiKey'] }, waiting: false });
    reads[0]!.settle(null);
    await settled();
    assert.deepEqual(changed, ['shop', 'shop']);
    assert.deepEqual(secrets.credentialsFor('shop', [ref]).fields, { credentials: {}, credentialProblems: { 'keys/apiKey': 'does not exist' } });
  });

  it('sends no value it knows is unusable, nor any of a Secret not labelled for Breakwater (F1, F6, F7)', async (t) => {
    const { secrets, reads } = values(t);
    const refs = [ref, { name: 'keys', key: 'big' }, { name: 'other', key: 'password' }];
    secrets.credentialsFor('shop', refs);
    reads.find((r) => r.id === 'shop/keys')!.settle(secretRead(secret({ apiKey: 'sk-ok', big: 'A'.repeat(900_000) })));
    reads.find((r) => r.id === 'shop/other')!.settle(secretRead(secret({ password: 'db-root-password' }, {})));
    await settled();
    const { fields } = secrets.credentialsFor('shop', refs);
    assert.deepEqual(fields.credentials, { 'keys/apiKey': 'sk-ok' });
    assert.deepEqual(Object.keys(fields.credentialProblems!), ['keys/big', 'other/password']);
    assert.ok(JSON.stringify(fields).length < 2000, 'no 900 KB value in a snapshot');
    assert.ok(!JSON.stringify(fields).includes('db-root-password'));
  });

  it('forgets a Secret no connected pod wants: named again, it is read afresh, and its old value is never sent (F8)', async (t) => {
    const { secrets, reads, wanted } = values(t);
    secrets.credentialsFor('shop', [ref]);
    reads[0]!.settle(secretRead(secret({ apiKey: 'sk-old' })));
    await settled();
    assert.deepEqual(secrets.credentialsFor('shop', [ref]).fields.credentials, { 'keys/apiKey': 'sk-old' });
    wanted.length = 0; // the policy names another Secret now
    await secrets.poll();
    assert.equal(reads.length, 1, 'what no one wants is not read');
    assert.deepEqual(secrets.credentialsFor('shop', [ref]), { fields: { credentials: {}, unreadCredentials: ['keys/apiKey'] }, waiting: true }, 'named again: read afresh, the old value forgotten');
    reads[1]!.settle(null); // deleted meanwhile
    await settled();
    assert.deepEqual(secrets.credentialsFor('shop', [ref]).fields, { credentials: {}, credentialProblems: { 'keys/apiKey': 'does not exist' } });
  });
});

describe('a pod\'s config stream and its policy\'s Secret', () => {
  const policy: PolicyObject = {
    apiVersion: 'breakwater.dev/v1alpha1',
    kind: 'ResiliencePolicy',
    metadata: { namespace: 'shop', name: 'chat', generation: 1, uid: 'uid-1', creationTimestamp: new Date(0) },
    spec: { podSelector: { matchLabels: { app: 'chat' } }, upstreams: [{ name: 'openai', url: 'http://127.0.0.1:9', auth: { secretRef: ref } }] } as unknown as PolicyObject['spec'],
  };

  function controller(t: TestContext, firstReadWaitMs = 60_000) {
    const reader = fakeReader();
    let reconciler: Reconciler | undefined = undefined;
    const secrets = new SecretValues(reader.read, (namespace) => reconciler!.secretsChanged(namespace), () => reconciler!.wantedSecrets(), silent, { pollMs: 3_600_000, firstReadWaitMs });
    reconciler = new Reconciler({
      custom: {} as CustomObjectsApi,
      core: {} as CoreV1Api,
      events: { record() {} } as unknown as EventRecorder,
      reports: { save() {}, forget() {}, close() {} } as unknown as ReportRecorder,
      log: silent,
      isLeader: () => false,
      credentials: (namespace, refs) => secrets.credentialsFor(namespace, refs),
    });
    t.after(() => {
      secrets.close();
      reconciler!.close();
    });
    reconciler.upsertPolicy(policy);
    reconciler.upsertPod({ metadata: { namespace: 'shop', name: 'chat-1', labels: { app: 'chat' } } });
    const events: string[] = [];
    const res = { writeHead() {}, write: (chunk: string) => events.push(chunk), end() {} } as unknown as ServerResponse;
    reconciler.hub.attach('shop/chat-1', res);
    const snapshots = () => events.filter((e) => e.startsWith('event: snapshot')).map((e) => JSON.parse(e.slice(e.indexOf('data: ') + 6)));
    return { reads: reader.reads, snapshots };
  }

  it('gets no snapshot while the Secret is first read, then one with its value: no call fails for want of a read (F3, F5)', async (t) => {
    const { reads, snapshots } = controller(t);
    assert.deepEqual(snapshots(), [], 'held back while the Secret is read');
    reads[0]!.settle(secretRead(secret({ apiKey: 'sk-live' })));
    await settled();
    assert.deepEqual(snapshots().map((s) => s.credentials), [{ 'keys/apiKey': 'sk-live' }]);
  });

  it('gets a snapshot saying the key is unread, never that it is absent, when the Secret cannot be read (F4)', async (t) => {
    const { reads, snapshots } = controller(t);
    reads[0]!.fail(403);
    await settled();
    assert.deepEqual(snapshots().map(({ credentials, credentialProblems, unreadCredentials }) => ({ credentials, credentialProblems, unreadCredentials })), [
      { credentials: {}, credentialProblems: undefined, unreadCredentials: ['keys/apiKey'] },
    ]);
  });
});
