/**
 * A stream's end is read from its parsed events, never from its bytes: on
 * the default policy plus one fallback tier, read through the app's SDK.
 *
 * - A model whose TEXT contains its API's terminator (`data: [DONE]`,
 *   `event: message_stop`, `{"done":true}`: a model explaining SSE), then a
 *   cut: the app gets the whole answer (recovered) or a clean error; never
 *   a stream that just stops as if complete (the OpenAI SDK ends quietly on
 *   EOF, so that would look like a short answer). The sidecar's metrics
 *   must agree with what the app saw.
 * - An upstream that writes `data:[DONE]` (no space, as the SSE spec
 *   allows): complete, one upstream request, no error event.
 * - SSE framed with bare CR or CRLF line endings (both allowed by the
 *   WHATWG spec, and read by both SDKs): relayed whole.
 * - `n: 2`, cut after choice 0 finished but before choice 1 did: the app
 *   never gets a clean end over a truncated choice 1.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { describeError, isCleanError, openaiStream, show, type Seen } from '../support/app-clients.js';
import { always, failoverRig, first, metricsAfter, sum, trace, type FailoverRig } from '../support/failover-rig.js';
import { answerTokens, CANONICAL, TWO_CHOICES, twoChoiceEventsBefore, type Api, type ModelUpstreamOptions } from '../support/model-upstream.js';

const MENTION_AT = 39; // the last word before the cut at 40
const FINISH: Record<Api, string> = { openai: 'stop', anthropic: 'end_turn', ollama: 'stop' };

/** What the app saw: the whole answer, finished; or an error after a prefix of it. Nothing else. */
function assertWholeOrCleanError(api: Api, s: Seen, whole: string): void {
  if (s.error === undefined) {
    assert.equal(s.text, whole, `no error, so the answer must be whole: ${show(s)}`);
    assert.equal(s.finish, FINISH[api], `no error, so the answer must be finished: ${show(s)}`);
    if (api !== 'openai') assert.ok(s.ended, `no error, so the terminator must have come: ${show(s)}`);
  } else {
    assert.ok(isCleanError(s.error), `a clean error event, not a broken connection or garbage: ${describeError(s.error)}`);
    assert.ok(whole.startsWith(s.text), `an error after a prefix of the answer, nothing spliced: ${show(s)}`);
  }
}

/** The sidecar's books agree with what the app saw. */
async function assertCountedAsSeen(rig: FailoverRig, s: Seen): Promise<void> {
  const m = await metricsAfter(rig.sidecar.adminUrl, 1);
  const clean = sum(m, 'breakwater_requests_total', (l) => l.class === 'none');
  const failed = sum(m, 'breakwater_requests_total', (l) => l.class !== 'none');
  if (s.error !== undefined) {
    assert.equal(clean, 0, 'a request whose app got an error is not counted as a clean success');
    assert.ok(failed >= 1, 'it is counted with its failure class');
  } else {
    // The answer is whole, but the primary's stream was cut: that break is on record, as a failed attempt or a recovery.
    const failedAttempts = sum(m, 'breakwater_upstream_attempts_total', (l) => l.class !== 'none' && l.class !== 'cancelled');
    const recoveries = sum(m, 'breakwater_stream_recoveries_total');
    assert.ok(failedAttempts + recoveries >= 1, `the cut is on record (failed attempts ${failedAttempts}, recoveries ${recoveries})`);
  }
}

const rigFor = (t: Parameters<typeof failoverRig>[0], api: Api, primary: ModelUpstreamOptions, backup: ModelUpstreamOptions = {}) => failoverRig(t, api, primary, backup);

describe('stream ends read from parsed events', { concurrency: 4 }, () => {
  for (const api of ['openai', 'anthropic', 'ollama'] as const) {
    const mentioned = answerTokens(api, { doneMentionAt: MENTION_AT }).join('');

    for (const [when, fault] of [['on every primary attempt', always({ cutAfter: 40 })], ['once', first(1, { cutAfter: 40 })]] as const) {
      it(`${api}: the text mentions the terminator at word ${MENTION_AT}, then a cut at word 40 ${when}: the whole answer or a clean error, and the metrics agree`, { timeout: 30_000 }, async (t) => {
        const rig = await rigFor(t, api, { doneMentionAt: MENTION_AT, fault }, { doneMentionAt: MENTION_AT });
        t.after(() => t.diagnostic(trace(rig)));
        const s = await rig.ask();
        t.diagnostic(show(s));
        assertWholeOrCleanError(api, s, mentioned);
        await assertCountedAsSeen(rig, s);
      });
    }

    it(`${api}: the text mentions the terminator, and nothing breaks: the whole answer, one upstream request`, { timeout: 30_000 }, async (t) => {
      const rig = await rigFor(t, api, { doneMentionAt: MENTION_AT });
      const s = await rig.ask();
      assert.equal(s.error, undefined, show(s));
      assert.equal(s.text, mentioned, show(s));
      assert.equal(s.finish, FINISH[api]);
      assert.equal(rig.calls(), 1, trace(rig));
    });
  }

  for (const noSpaceFields of [false, true]) {
    it(`openai: the upstream ends with data:[DONE] (no space${noSpaceFields ? ', and every field written data:{…}' : ''}): complete, one upstream request, no error event`, { timeout: 30_000 }, async (t) => {
      const rig = await rigFor(t, 'openai', { noSpaceDone: true, noSpaceFields });
      const s = await rig.ask();
      assert.equal(s.error, undefined, show(s));
      assert.equal(s.text, CANONICAL);
      assert.equal(s.usage?.output, 60);
      assert.equal(rig.primary.calls.length, 1, trace(rig));
      assert.equal(rig.backup.calls.length, 0, trace(rig));
      const raw = await (await fetch(`${rig.baseURL}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'small-model', stream: true, messages: [{ role: 'user', content: 'count' }] }) })).text();
      assert.ok(!/"error"/.test(raw), `no error event: ${raw.slice(-300)}`);
      assert.match(raw, /data: ?\[DONE\]\s*$/, 'it ends with a terminator');
      assert.equal(rig.primary.calls.length, 2, `one upstream request each: ${trace(rig)}`);
      const m = await metricsAfter(rig.sidecar.adminUrl, 2);
      assert.equal(sum(m, 'breakwater_requests_total', (l) => l.class === 'none'), 2, 'both counted as clean successes');
    });
  }

  for (const framing of ['cr', 'crlf'] as const) {
    for (const api of ['openai', 'anthropic'] as const) {
      it(`${api}: SSE framed with ${framing === 'cr' ? 'bare CR' : 'CRLF'} line endings: relayed whole, one upstream request`, { timeout: 30_000 }, async (t) => {
        const rig = await rigFor(t, api, { framing });
        const s = await rig.ask();
        assert.equal(s.error, undefined, show(s));
        assert.equal(s.text, CANONICAL, show(s));
        assert.equal(s.finish, FINISH[api]);
        if (api === 'anthropic') assert.ok(s.ended, 'message_stop reached the app');
        assert.equal(rig.calls(), 1, trace(rig));
      });
    }
  }

  for (const [when, fault] of [['on every primary attempt', always({ cutAfter: twoChoiceEventsBefore(40) })], ['once', first(1, { cutAfter: twoChoiceEventsBefore(40) })]] as const) {
    it(`openai n: 2, a cut after choice 0 finished but before choice 1 did, ${when}: an error, or both choices whole; never a clean end over a short choice 1`, { timeout: 30_000 }, async (t) => {
      const rig = await rigFor(t, 'openai', { fault });
      t.after(() => t.diagnostic(trace(rig)));
      const s = await openaiStream(rig.baseURL, { n: 2, includeUsage: true });
      t.diagnostic(show(s));
      if (s.error === undefined) {
        assert.deepEqual(
          s.choices,
          [
            { text: TWO_CHOICES[0], finish: 'stop' },
            { text: TWO_CHOICES[1], finish: 'stop' },
          ],
          `no error, so both choices must be whole and finished: ${show(s)}`,
        );
      } else {
        assert.ok(isCleanError(s.error), `a clean error event: ${describeError(s.error)}`);
        assert.equal(s.choices[0]?.text, TWO_CHOICES[0]);
        assert.ok(TWO_CHOICES[1].startsWith(s.choices[1]?.text ?? ''), 'choice 1 is a prefix, nothing spliced');
      }
    });
  }
});
