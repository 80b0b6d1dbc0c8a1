/**
 * Time to first token on the DEFAULT policy plus one fallback tier, with
 * no timeout set: the sidecar's defaults must tell a slow first token from
 * a healthy model that thinks, and neither cut the thinker off nor pile
 * requests on a slow model. (The sidecar sends a stream that has had no
 * content event for `timeouts.fallbackHedge`, 10 s by default, to the first
 * fallback tier as well; the first to produce content wins.)
 *
 * - A primary whose first token is 20 s late on every attempt: the app's
 *   whole answer, from either upstream, within 12 s.
 * - A healthy reasoning model (the primary) that streams reasoning deltas
 *   from 2 s on, one a second, and its first text at 90 s: not cut off, the
 *   answer from the primary, and no request to the backup.
 * - Healthy models that are silent for 40 s and then stream: the whole
 *   answer, and at most 2 upstream requests in all.
 *
 * The cases wait out real time (up to 90 s), all at once.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { anthropicStream, show } from '../support/app-clients.js';
import { always, APP_MODEL, everyOther, FALLBACK_MODEL, failoverRig, trace } from '../support/failover-rig.js';
import { CANONICAL, reasoningTokens, type Api } from '../support/model-upstream.js';

const APIS: Api[] = ['openai', 'anthropic', 'ollama'];
const FINISH: Record<Api, string> = { openai: 'stop', anthropic: 'end_turn', ollama: 'stop' };
/** Reasoning events at 2 s, 3 s … 89 s; the first text event 1 s after the last of them, at 90 s. */
const THINKING = { reasoning: 88, reasoningGapMs: 1000, fault: always({ firstTokenAfterMs: 2000 }) };

describe('time to first token on the default policy with one fallback tier', { concurrency: true }, () => {
  for (const api of APIS) {
    it(`${api}: a primary whose first token is 20 s late on every attempt: the whole answer within 12 s`, { timeout: 60_000 }, async (t) => {
      const rig = await failoverRig(t, api, { fault: always({ firstTokenAfterMs: 20_000 }) });
      t.after(() => t.diagnostic(trace(rig)));
      const s = await rig.ask({ timeoutMs: 40_000 });
      assert.equal(s.error, undefined, show(s));
      assert.equal(s.text, CANONICAL, show(s));
      assert.equal(s.finish, FINISH[api]);
      assert.ok(s.ms < 12_000, `within 12 s: took ${s.ms} ms (${trace(rig)})`);
      assert.ok([APP_MODEL[api], FALLBACK_MODEL].includes(s.model), show(s));
    });

    it(`${api}: a healthy reasoning model that streams reasoning from 2 s and its first text at 90 s: not cut off, the answer from the primary, no request to the backup`, { timeout: 115_000 }, async (t) => {
      const rig = await failoverRig(t, api, THINKING, { reasoning: 88 });
      t.after(() => t.diagnostic(trace(rig)));
      const s = api === 'anthropic' ? await anthropicStream(rig.baseURL, { thinking: true, timeoutMs: 110_000 }) : await rig.ask({ timeoutMs: 110_000 });
      assert.equal(s.error, undefined, show(s));
      assert.equal(s.reasoning, reasoningTokens(88).join(''), `the reasoning whole: ${show(s)}`);
      assert.equal(s.text, CANONICAL, show(s));
      assert.equal(s.finish, FINISH[api]);
      assert.equal(s.model, APP_MODEL[api], 'the primary answered');
      assert.ok(s.ms >= 89_000, `it did think: ${s.ms} ms`);
      assert.equal(rig.primary.calls.length, 1, trace(rig));
      assert.equal(rig.backup.calls.length, 0, `the backup saw no request: ${trace(rig)}`);
    });
  }

  it('openai: a primary whose first token is 20 s late on every other call: two requests, each whole within 12 s', { timeout: 60_000 }, async (t) => {
    const rig = await failoverRig(t, 'openai', { fault: everyOther({ firstTokenAfterMs: 20_000 }) });
    t.after(() => t.diagnostic(trace(rig)));
    for (const request of [1, 2]) {
      const s = await rig.ask({ timeoutMs: 40_000 });
      assert.equal(s.error, undefined, `request ${request}: ${show(s)}`);
      assert.equal(s.text, CANONICAL, `request ${request}: ${show(s)}`);
      assert.ok(s.ms < 12_000, `request ${request} within 12 s: took ${s.ms} ms (${trace(rig)})`);
    }
  });

  for (const [how, fault] of [
    ['silent (no headers) for 40 s', { silentForMs: 40_000 }],
    ['sending its headers and role chunk at once, then nothing for 40 s', { firstTokenAfterMs: 40_000 }],
  ] as const) {
    it(`openai: healthy models ${how}, then streaming: the whole answer, at most 2 upstream requests`, { timeout: 90_000 }, async (t) => {
      const rig = await failoverRig(t, 'openai', { fault: always(fault) }, { fault: always(fault) });
      t.after(() => t.diagnostic(trace(rig)));
      const s = await rig.ask({ timeoutMs: 85_000 });
      assert.equal(s.error, undefined, show(s));
      assert.equal(s.text, CANONICAL, show(s));
      assert.ok(rig.calls() <= 2, `at most 2 upstream requests: ${trace(rig)}`);
    });
  }

  it('anthropic: healthy models silent for 40 s, then streaming: the whole answer, at most 2 upstream requests', { timeout: 90_000 }, async (t) => {
    const rig = await failoverRig(t, 'anthropic', { fault: always({ silentForMs: 40_000 }) }, { fault: always({ silentForMs: 40_000 }) });
    t.after(() => t.diagnostic(trace(rig)));
    const s = await rig.ask({ timeoutMs: 85_000 });
    assert.equal(s.error, undefined, show(s));
    assert.equal(s.text, CANONICAL, show(s));
    assert.ok(s.ended);
    assert.ok(rig.calls() <= 2, `at most 2 upstream requests: ${trace(rig)}`);
  });
});
