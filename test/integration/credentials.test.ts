/**
 * An app's credentials go to the upstream it addressed and nowhere else: a
 * fallback tier gets its own credentials from the policy, or none, whether
 * or not the primary has credentials of its own, and in degraded mode too.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { chat, post, startMock, startRig } from '../support/harness.js';
import { freePort } from '../support/ports.js';

const APP_CREDENTIALS = {
  authorization: 'Bearer sk-app',
  'x-api-key': 'app-anthropic-key',
  'api-key': 'app-azure-key',
  'x-goog-api-key': 'app-google-key',
  cookie: 'session=app',
  'openai-organization': 'org-app',
  'openai-project': 'proj-app',
  // Gateways' and clouds' own names (red team, issue 25): matched by their words, not listed.
  'ocp-apim-subscription-key': 'apim-app',
  'x-amz-security-token': 'amz-app',
  'cf-aig-authorization': 'Bearer cf-app',
  'x-litellm-api-key': 'litellm-app',
  'helicone-auth': 'Bearer helicone-app',
};
const fast = { attempts: 1 };

describe('credentials', () => {
  for (const primaryAuth of [false, true]) {
    it(`never reach a fallback tier${primaryAuth ? ' (primary with credentials of its own)' : ''}`, async (t) => {
      const primary = await startMock(t);
      primary.defaultBehavior = { kind: 'status', status: 503 };
      const other = await startMock(t);
      process.env.BW_TEST_PRIMARY_KEY = 'sk-primary-from-policy';
      t.after(() => delete process.env.BW_TEST_PRIMARY_KEY);
      const rig = await startRig(t, {
        upstreams: [
          { name: 'primary', url: primary.url, retry: fast, ...(primaryAuth && { auth: { env: 'BW_TEST_PRIMARY_KEY' } }), fallback: [{ upstream: 'other' }] },
          { name: 'other', url: other.url, retry: fast },
        ],
      });
      const r = await post(rig.url('/primary/v1/chat/completions'), chat(), APP_CREDENTIALS);
      assert.equal(r.status, 200);
      assert.equal(r.headers.get('x-breakwater-fallback'), 'other');
      const seenByPrimary = primary.requests[0]!.headers;
      if (primaryAuth) assert.equal(seenByPrimary.authorization, 'Bearer sk-primary-from-policy');
      else assert.equal(seenByPrimary.authorization, 'Bearer sk-app', 'the addressed upstream gets the app\'s own key');
      const seenByOther = other.requests[0]!.headers;
      for (const header of Object.keys(APP_CREDENTIALS)) assert.equal(seenByOther[header], undefined, `${header} reached the fallback tier`);
    });
  }

  it('never reach a fallback tier in the query either (Google\'s ?key=, and the usual names of keys and tokens); other parameters go on', async (t) => {
    const primary = await startMock(t);
    primary.defaultBehavior = { kind: 'status', status: 503 };
    const other = await startMock(t);
    const rig = await startRig(t, { upstreams: [{ name: 'primary', url: primary.url, retry: fast, fallback: [{ upstream: 'other' }] }, { name: 'other', url: other.url, retry: fast }] });
    const query = 'key=AIza-app&api-version=2024-10-21&API_KEY=k2&access_token=t&subscription-key=s&code=fn&sig=sas';
    const r = await post(rig.url(`/primary/v1/chat/completions?${query}`), chat());
    assert.equal(r.status, 200);
    assert.equal(primary.requests[0]!.path, `/v1/chat/completions?${query}`, 'the addressed upstream gets the app\'s query');
    assert.equal(other.requests[0]!.path, '/v1/chat/completions?api-version=2024-10-21');
  });

  it('never reach a fallback tier in degraded mode either', async (t) => {
    const other = await startMock(t);
    const rig = await startRig(t, {
      upstreams: [
        { name: 'primary', url: `http://127.0.0.1:${await freePort()}`, retry: fast, fallback: [{ upstream: 'other', model: 'small' }] },
        { name: 'other', url: other.url, retry: fast },
        { name: 'broken', url: `http://127.0.0.1:${await freePort()}`, retry: fast, circuitBreaker: { consecutiveFailures: 0, failureRate: { threshold: 0 } } },
      ],
      degradation: { degraded: { errorRate: 5, maxTokens: 16 } },
    });
    for (let i = 0; i < 25; i++) await post(rig.url('/broken/v1/chat/completions'), chat());
    const r = await post(rig.url('/primary/v1/chat/completions'), chat(), APP_CREDENTIALS);
    assert.equal(r.headers.get('x-breakwater-mode'), 'degraded');
    const last = other.requests.at(-1)!;
    assert.equal(last.body.max_tokens, 16, 'the sidecar is degraded and rewrote the request');
    for (const header of Object.keys(APP_CREDENTIALS)) assert.equal(last.headers[header], undefined, `${header} reached the fallback tier`);
  });
});
