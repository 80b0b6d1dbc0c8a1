/**
 * Stream faults that recur on EVERY attempt to the primary, on the default
 * policy plus one fallback tier, for OpenAI, Anthropic and Ollama
 * upstreams, read through the app's SDK: a cut at word 40 of 60, an
 * in-stream error event at word 20, a malformed event at word 20, a stall
 * after word 20 (the default streamIdle, 30 s), and a cut where the backup
 * refuses a prefill. A primary that breaks the same way each time must not
 * be asked again and again: the backup, which answers well, finishes the
 * answer. (Also a clean end at word 40, without finish or terminator,
 * which both SDKs take for a complete answer if it reaches them.) In each
 * case the app gets the whole canonical answer, no error,
 * and the backup was asked; a cut, an error or a malformed event within
 * 3 s, a stall within 45 s. Each fault also runs intermittently (every
 * other call), where any route to the whole answer will do.
 *
 * The 30 s stalls run at once with each other and with the fast cases,
 * which run a few at a time (each case is its own sidecar process; on two
 * cores, starting them all together would eat into the 3 s budgets).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { describeError, show, type Seen } from '../support/app-clients.js';
import { always, APP_MODEL, everyOther, FALLBACK_MODEL, failoverRig, trace, type FailoverRig } from '../support/failover-rig.js';
import { CANONICAL, type Api, type Fault } from '../support/model-upstream.js';

const APIS: Api[] = ['openai', 'anthropic', 'ollama'];

const FAULTS = {
  'a cut (connection reset) at word 40 of 60': { fault: { cutAfter: 40 }, withinMs: 3000 },
  'a clean end (no finish, no terminator) at word 40': { fault: { endAfter: 40 }, withinMs: 3000 },
  'an in-stream error event at word 20': { fault: { errorEventAt: 20 }, withinMs: 3000 },
  'a malformed event at word 20': { fault: { malformedAt: 20 }, withinMs: 3000 },
  'a stall after word 20 (default streamIdle 30 s)': { fault: { stallAfter: 20 }, withinMs: 45_000 },
} satisfies Record<string, { fault: Fault; withinMs: number }>;

const FINISH: Record<Api, string> = { openai: 'stop', anthropic: 'end_turn', ollama: 'stop' };

/** The app got the whole canonical answer, finished, without an error, in time. */
function assertWhole(api: Api, s: Seen, withinMs: number): void {
  assert.equal(s.error, undefined, `no error reached the app: ${show(s)}`);
  assert.equal(s.text, CANONICAL, `the whole canonical answer: ${show(s)}`);
  assert.equal(s.finish, FINISH[api], show(s));
  if (api !== 'openai') assert.ok(s.ended, `the API's terminator reached the app: ${show(s)}`);
  assert.ok(s.ms < withinMs, `within ${withinMs} ms: took ${s.ms} ms`);
}

/** The answer came from the backup: the model it names, and the backup was asked. */
function assertFromBackup(api: Api, rig: FailoverRig, s: Seen): void {
  assert.ok(rig.backup.calls.length >= 1, `the backup was asked (primary ${rig.primary.calls.length}, backup ${rig.backup.calls.length})`);
  assert.equal(rig.backup.calls[0]?.json.model, FALLBACK_MODEL, "the backup was asked for the tier's model");
  // OpenAI chunks and Ollama lines each name their model, so the last ones name the backup's. Anthropic names it once,
  // in message_start, which reached the app before the break: the primary's (a second message_start would be an SDK error).
  assert.equal(s.model, api === 'anthropic' ? APP_MODEL.anthropic : FALLBACK_MODEL, show(s));
  assert.ok(rig.calls() <= 8, `a bounded number of upstream requests: primary ${rig.primary.calls.length}, backup ${rig.backup.calls.length}`);
}

describe('stream faults on every attempt to the primary, with one fallback tier', { concurrency: true }, () => {
  describe('30 s stalls (all at once)', { concurrency: true }, () => {
    for (const api of APIS) {
      const { fault, withinMs } = FAULTS['a stall after word 20 (default streamIdle 30 s)'];
      it(`${api}: a stall after word 20 on every primary attempt, default timeouts: the whole answer from the backup within 45 s`, { timeout: 70_000 }, async (t) => {
        const rig = await failoverRig(t, api, { fault: always(fault) });
        t.after(() => t.diagnostic(trace(rig)));
        const s = await rig.ask({ timeoutMs: 50_000 });
        assertWhole(api, s, withinMs);
        assertFromBackup(api, rig, s);
      });

      it(`${api}: a stall after word 20 on every other call: the whole answer within 45 s`, { timeout: 70_000 }, async (t) => {
        const rig = await failoverRig(t, api, { fault: everyOther(fault) });
        t.after(() => t.diagnostic(trace(rig)));
        assertWhole(api, await rig.ask({ timeoutMs: 50_000 }), withinMs);
      });
    }
  });

  describe('cuts, error events and malformed events (a few at a time)', { concurrency: 3 }, () => {
    for (const api of APIS) {
      for (const [name, { fault, withinMs }] of Object.entries(FAULTS)) {
        if ('stallAfter' in fault) continue;
        it(`${api}: ${name} on every primary attempt: the whole answer from the backup within 3 s`, { timeout: 30_000 }, async (t) => {
          const rig = await failoverRig(t, api, { fault: always(fault) });
          t.after(() => t.diagnostic(trace(rig)));
          const s = await rig.ask();
          assertWhole(api, s, withinMs);
          assertFromBackup(api, rig, s);
          if (api === 'openai') assert.equal(s.usage?.output, 60, 'the usage of the stream that finished');
        });

        it(`${api}: ${name} on every other call: two requests, each whole within 3 s`, { timeout: 30_000 }, async (t) => {
          const rig = await failoverRig(t, api, { fault: everyOther(fault) });
          t.after(() => t.diagnostic(trace(rig)));
          for (const request of [1, 2]) {
            const s = await rig.ask();
            assert.equal(s.error, undefined, `request ${request}: ${show(s)}`);
            assertWhole(api, s, withinMs);
          }
        });
      }
    }

    it('openai without stream_options.include_usage: a cut at word 40 on every primary attempt, the whole answer from the backup', { timeout: 30_000 }, async (t) => {
      const rig = await failoverRig(t, 'openai', { fault: always({ cutAfter: 40 }) });
      t.after(() => t.diagnostic(trace(rig)));
      const s = await rig.ask({ includeUsage: false });
      assertWhole('openai', s, 3000);
      assertFromBackup('openai', rig, s);
      assert.equal(s.usage, undefined, 'no usage chunk that the app did not ask for');
    });

    it('anthropic through messages.create({stream: true}): a cut at word 40 on every primary attempt, the whole answer and message_stop', { timeout: 30_000 }, async (t) => {
      const rig = await failoverRig(t, 'anthropic', { fault: always({ cutAfter: 40 }) });
      t.after(() => t.diagnostic(trace(rig)));
      const s = await rig.ask({ via: 'create' });
      assertWhole('anthropic', s, 3000);
      assertFromBackup('anthropic', rig, s);
    });

    for (const api of ['openai', 'anthropic'] as const) {
      it(`${api}: a cut at word 40 on every primary attempt, and a backup that rejects a prefill with a 400: the whole answer, no prefill error`, { timeout: 30_000 }, async (t) => {
        const rig = await failoverRig(t, api, { fault: always({ cutAfter: 40 }) }, { prefill: 'rejects' });
        t.after(() => t.diagnostic(trace(rig)));
        const s = await rig.ask();
        assert.ok(!/prefill/i.test(describeError(s.error)), `the prefill refusal never reaches the app: ${describeError(s.error)}`);
        assertWhole(api, s, 3000);
        assertFromBackup(api, rig, s);
        const prefilled = rig.backup.calls.filter((c) => c.json.messages?.at(-1)?.role === 'assistant').length;
        t.diagnostic(`backup requests: ${rig.backup.calls.length}, ${prefilled} of them with a prefill`);
      });
    }
  });
});
