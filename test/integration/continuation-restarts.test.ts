/**
 * A continuation answered by a restart, on the default policy plus one
 * fallback tier, for the APIs whose default recovery is a prefill
 * (Anthropic, Ollama's /api/chat) and for vLLM asked with
 * continue_final_message. The upstream accepts the prefill (a trailing
 * assistant message "w0 … w39") but starts its answer again from "w0"
 * (an Ollama model whose template drops a trailing assistant message does
 * this), or goes on from the start of the prefill's last word, so that word
 * comes twice. Relaying what such a continuation sends after the text
 * already delivered would double it.
 *
 * What the app may get: exactly the canonical answer (from another
 * strategy, regenerate and verify, or another tier), or a clean error event
 * after a prefix of it. Never a doubled or spliced text.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { describeError, isCleanError, show, type Seen } from '../support/app-clients.js';
import { always, failoverRig, first, trace } from '../support/failover-rig.js';
import { CANONICAL, prefillOf, TOKENS, type Api } from '../support/model-upstream.js';

const CUT = { cutAfter: 40 };

/**
 * Two tokenisations of the same answer. With the space at the end of each token ("w39 "), the delivered text ends in
 * whitespace, which Anthropic's prefill may not: the sidecar leaves it out and can check that the continuation starts
 * with it. With the space at the start ("w39", " w40"), as BPE tokenisers write words, there is nothing to leave out
 * and nothing that check could catch.
 */
const STYLES = {
  'trailing-space tokens': TOKENS,
  'leading-space tokens': TOKENS.map((w, i) => (i === 0 ? w.trim() : ` ${w.trim()}`)),
} as const;

function assertCanonicalOrCleanError(s: Seen, canonical = CANONICAL): void {
  if (s.error === undefined) {
    assert.equal(s.text, canonical, `no error, so exactly the canonical answer, never a doubled one: ${show(s)}`);
  } else {
    assert.ok(isCleanError(s.error), `a clean error event: ${describeError(s.error)}`);
    assert.ok(canonical.startsWith(s.text), `an error after a prefix of the answer, nothing doubled: ${show(s)}`);
  }
}

describe('a continuation answered by a restart is never spliced', { concurrency: 4 }, () => {
  for (const api of ['anthropic', 'ollama'] as const satisfies Api[]) {
    for (const [style, tokens] of Object.entries(STYLES)) {
      const canonical = tokens.join('');
      for (const prefill of ['restarts', 'overlaps'] as const) {
        it(`${api}, ${style}: a cut at word 40 once, and upstreams that take a prefill but ${prefill === 'restarts' ? 'restart from the first word' : 'repeat its last word'}: the canonical answer or a clean error`, { timeout: 30_000 }, async (t) => {
          const rig = await failoverRig(t, api, { tokens, prefill, fault: first(1, CUT) }, { tokens, prefill });
          t.after(() => t.diagnostic(trace(rig)));
          const s = await rig.ask();
          t.diagnostic(show(s));
          assertCanonicalOrCleanError(s, canonical);
          const prefilled = [...rig.primary.calls, ...rig.backup.calls].filter((c) => prefillOf(c.json) !== undefined).length;
          t.diagnostic(`${prefilled} continuation request(s) sent`);
        });

        it(`${api}, ${style}: a cut at word 40 on every primary attempt, and a backup that takes a prefill but ${prefill === 'restarts' ? 'restarts from the first word' : 'repeats its last word'}: the canonical answer or a clean error`, { timeout: 30_000 }, async (t) => {
          const rig = await failoverRig(t, api, { tokens, fault: always(CUT) }, { tokens, prefill });
          t.after(() => t.diagnostic(trace(rig)));
          const s = await rig.ask();
          t.diagnostic(show(s));
          assertCanonicalOrCleanError(s, canonical);
        });
      }
    }
  }

  it('anthropic through messages.create({stream: true}), leading-space tokens: a restarting continuation is not spliced', { timeout: 30_000 }, async (t) => {
    const tokens = STYLES['leading-space tokens'];
    const rig = await failoverRig(t, 'anthropic', { tokens, prefill: 'restarts', fault: first(1, CUT) }, { tokens, prefill: 'restarts' });
    t.after(() => t.diagnostic(trace(rig)));
    assertCanonicalOrCleanError(await rig.ask({ via: 'create' }), tokens.join(''));
  });

  /**
   * Tokens that end in the middle of a word, as BPE tokenisers cut words they have no token for: the cut after " Germ"
   * leaves the app with "…The capital of Germ", and an `overlaps` upstream goes on from the start of that partial
   * word ("Germany is Berlin."), glued to it. Relayed, the app would read "…GermGermany is Berlin." and a clean end.
   */
  const SUBWORD_TOKENS = ['The', ' capital', ' of', ' France', ' is', ' Paris', '.', ' The', ' capital', ' of', ' Germ', 'any', ' is', ' Berlin', '.'];
  for (const api of ['anthropic', 'ollama'] as const satisfies Api[]) {
    it(`${api}: a cut in the middle of a word, and a continuation that repeats that partial word glued on: the whole answer (regenerated and verified) or a clean error, never the spliced text`, { timeout: 30_000 }, async (t) => {
      const tokens = SUBWORD_TOKENS;
      const canonical = tokens.join('');
      const rig = await failoverRig(t, api, { tokens, prefill: 'overlaps', fault: first(1, { cutAfter: tokens.indexOf(' Germ') + 1 }) }, { tokens, prefill: 'overlaps' });
      t.after(() => t.diagnostic(trace(rig)));
      // Through the app's SDK: for Anthropic, messages.stream(...).finalMessage().
      const s = await rig.ask();
      t.diagnostic(show(s));
      assert.ok(!s.text.includes('GermGerm'), `the spliced text reached the app: ${show(s)}`);
      assertCanonicalOrCleanError(s, canonical);
      const prefills = [...rig.primary.calls, ...rig.backup.calls].map((c) => prefillOf(c.json)).filter((p) => p !== undefined);
      assert.ok(prefills.includes('The capital of France is Paris. The capital of Germ'), `a continuation was asked for after the partial word: ${trace(rig)}`);
    });
  }

  for (const prefill of ['restarts', 'overlaps'] as const) {
    it(`vLLM (openai, continuation: continue-final-message) whose template ${prefill === 'restarts' ? 'restarts the answer' : 'repeats the last word'}: the canonical answer or a clean error`, { timeout: 30_000 }, async (t) => {
      const rig = await failoverRig(t, 'openai', { prefill, fault: first(1, CUT) }, { prefill }, { streamRecovery: { continuation: 'continue-final-message' } });
      t.after(() => t.diagnostic(trace(rig)));
      const s = await rig.ask();
      t.diagnostic(show(s));
      assertCanonicalOrCleanError(s);
    });
  }
});
