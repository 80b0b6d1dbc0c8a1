/**
 * A policy's status tells the truth about the Secret keys it names (red team
 * 26, F1, F7, F10): Accepted is True only when every key gives a credential
 * the sidecars can use, by the rule they apply themselves; otherwise it is
 * False with a reason of its own (SecretNotFound, SecretNotAllowed,
 * SecretValueUnusable) and a message that names the key and says why, never
 * the value. The leader's Reconciler on fake API clients.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { CoreV1Api, CustomObjectsApi, V1Secret } from '@kubernetes/client-node';
import { pino } from 'pino';
import { ConditionType } from '../../api/index.js';
import type { Condition } from '../../api/policy-status.js';
import type { EventRecorder } from '../../controller/event-recorder.js';
import type { PolicyObject } from '../../controller/policy-object.js';
import { Reconciler } from '../../controller/reconciler.js';
import type { ReportRecorder } from '../../controller/report-store.js';

const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');

/** The Accepted condition a policy naming `keys/<key>` gets while the Secret `keys` is `secret` (undefined: it does not exist). */
async function accepted(key: string, secret: V1Secret | undefined): Promise<Condition> {
  const policy: PolicyObject = {
    apiVersion: 'breakwater.dev/v1alpha1',
    kind: 'ResiliencePolicy',
    metadata: { namespace: 'shop', name: 'chat', generation: 1, uid: 'uid-1', creationTimestamp: new Date(0) },
    spec: { upstreams: [{ name: 'plain', url: 'http://127.0.0.1:9' }, { name: 'openai', url: 'http://127.0.0.1:9', auth: { secretRef: { name: 'keys', key } } }] } as unknown as PolicyObject['spec'],
  };
  let written: PolicyObject['status'];
  const reconciler = new Reconciler({
    custom: {
      patchNamespacedCustomObjectStatus: async ({ body }: { body: [{ value: PolicyObject['status'] }] }) => {
        written = body[0].value;
        return { ...policy, status: written };
      },
    } as unknown as CustomObjectsApi,
    core: { readNamespacedSecret: async () => secret ?? Promise.reject(Object.assign(new Error('not found'), { code: 404 })) } as unknown as CoreV1Api,
    events: { record() {} } as unknown as EventRecorder,
    reports: { save() {}, forget() {}, close() {} } as unknown as ReportRecorder,
    log: pino({ level: 'silent' }),
    isLeader: () => true,
    coalesceMs: 0,
  });
  try {
    reconciler.upsertPolicy(policy);
    await reconciler.flush();
  } finally {
    reconciler.close();
  }
  return written!.conditions!.find((c) => c.type === ConditionType.Accepted)!;
}

const secret = (data: Record<string, string>, labels: Record<string, string> = { 'breakwater.dev/credential': 'true' }, type = 'Opaque'): V1Secret => ({
  metadata: { name: 'keys', namespace: 'shop', labels },
  type,
  data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, b64(v)])),
});

describe('Accepted, for a policy that names a Secret key', () => {
  it('is True when the Secret is labelled for Breakwater and the key holds a usable credential', async () => {
    const condition = await accepted('apiKey', secret({ apiKey: 'sk-ok\n' }));
    assert.equal(condition.status, 'True');
    assert.equal(condition.reason, 'Valid');
  });

  it('is False, SecretNotFound, when the Secret or its key does not exist, a key named like an Object.prototype member included', async () => {
    for (const [key, s] of [['apiKey', undefined], ['other', secret({ apiKey: 'sk-ok' })], ['constructor', secret({ apiKey: 'sk-ok' })], ['__proto__', secret({ apiKey: 'sk-ok' })]] as const) {
      const condition = await accepted(key, s);
      assert.equal(condition.status, 'False', key);
      assert.equal(condition.reason, 'SecretNotFound', key);
      assert.equal(condition.message, `upstream openai: Secret keys, key ${key} does not exist`);
    }
  });

  it('is False, SecretNotAllowed, when the Secret is not labelled breakwater.dev/credential=true, or is a cluster token, and says to label it (F7)', async () => {
    const unlabelled = await accepted('password', secret({ password: 'db-root-password' }, {}));
    assert.equal(unlabelled.status, 'False');
    assert.equal(unlabelled.reason, 'SecretNotAllowed');
    assert.match(unlabelled.message, /^upstream openai: Secret keys, key password is not usable: Secret keys is not labelled breakwater\.dev\/credential=true.*kubectl label secret keys breakwater\.dev\/credential=true/);
    assert.ok(!unlabelled.message.includes('db-root-password'));
    const token = await accepted('token', secret({ token: 'eyJhbGciOi' }, undefined, 'kubernetes.io/service-account-token'));
    assert.equal(token.reason, 'SecretNotAllowed');
  });

  it('is False, SecretValueUnusable, with "is not usable: <why>", when the value exists but the sidecar could not send it (F1)', async () => {
    for (const [value, why] of [['   \n', /empty/], ['sk-one\r\nx-injected: 1', /line break/], ['x'.repeat(20_000), /longer than 16 KiB/], ['sk-\u00e9', /outside ASCII/]] as const) {
      const condition = await accepted('apiKey', secret({ apiKey: value }));
      assert.equal(condition.status, 'False');
      assert.equal(condition.reason, 'SecretValueUnusable');
      assert.match(condition.message, /^upstream openai: Secret keys, key apiKey is not usable: /);
      assert.match(condition.message, why);
    }
  });
});
