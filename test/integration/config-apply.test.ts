/**
 * Applying a config can never kill the sidecar: a policy that would break
 * it is refused by validation (naming the field), and one that still fails
 * to apply is rejected whole, with the last good config left in force.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatProblems, parseDuration, validatePolicy } from '../../api/index.js';
import { compile } from '../support/layer-kit.js';
import { chat, post, startMock, startRig } from '../support/harness.js';

const base = { upstreams: [{ name: 'primary', url: 'http://127.0.0.1:9' }] };

describe('config that would break the sidecar', () => {
  it('is refused by validation, naming the field', () => {
    const cases: [object, RegExp][] = [
      [{ ...base, cache: { redis: { url: 'not a url' } } }, /cache\.redis\.url/],
      [{ ...base, cache: { maxEntries: 4294967296 } }, /cache\.maxEntries/],
      [{ ...base, cache: { maxEntries: 1e300 } }, /cache\.maxEntries/],
      [{ ...base, cache: { maxEntries: 1e9 } }, /cache\.maxEntries/],
      [{ upstreams: [{ name: 'primary', url: 'http://127.0.0.1:9', timeouts: { total: '1'.repeat(40) + 's' } }] }, /timeouts\.total/],
      [{ upstreams: [{ name: 'primary', url: 'http://127.0.0.1:9', auth: { env: 'K', header: 'X-Key\r\nX-Injected: 1' } }] }, /auth\.header/],
      [{ upstreams: [{ name: 'primary', url: 'http://127.0.0.1:9', auth: { env: 'K', prefix: 'Bearer \n' } }] }, /auth\.prefix/],
      [{ upstreams: [{ name: 'primary', url: 'https://user:secret@api.example.com/v1' }] }, /upstreams\.0\.url|upstreams\[0\]\.url/],
      [{ upstreams: [{ name: 'primary', url: 'https://api.example.com/v1?key=secret' }] }, /upstreams\.0\.url|upstreams\[0\]\.url/],
    ];
    for (const [spec, field] of cases) {
      const verdict = validatePolicy(spec);
      assert.equal(verdict.ok, false, JSON.stringify(spec).slice(0, 80));
      if (!verdict.ok) assert.match(formatProblems(verdict.problems), field);
    }
    assert.equal(validatePolicy({ ...base, cache: { redis: { url: 'rediss://cache.shop.svc:6380/0' } } }).ok, true);
  });

  it('rejects a long duration before parsing it', () => {
    assert.throws(() => parseDuration('9'.repeat(16_000) + 's'), /longer than 32 characters/);
    assert.equal(parseDuration('1h30m15s500ms'), 5_415_500);
  });

  it('that fails to apply is rejected whole: the last good config stays and keeps serving', async (t) => {
    const mock = await startMock(t);
    const rig = await startRig(t, { upstreams: [{ name: 'primary', url: mock.url }] });
    const good = rig.sidecar.state.config;
    // Past validation (built by hand): a cache too large for its library, and a new upstream that would come with it.
    const broken = compile({ upstreams: [{ name: 'primary', url: mock.url }, { name: 'other', url: mock.url }] });
    const unappliable = { ...broken, cache: { ...broken.cache, maxEntries: 2 ** 32 } };
    const result = rig.sidecar.apply(unappliable);
    assert.equal(result.ok, false);
    assert.match(result.ok ? '' : result.error, /could not be applied/);
    assert.equal(rig.sidecar.state.config, good, 'the last good config is in force');
    assert.equal(rig.sidecar.state.upstream('other'), undefined, 'nothing of the rejected config was swapped in');
    assert.ok(rig.logs.some((l) => l.msg === 'config rejected; the last good config stays in force'));
    assert.equal((await post(rig.url('/primary/v1/chat/completions'), chat())).status, 200);
  });
});
