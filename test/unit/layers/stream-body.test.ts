/**
 * holding() and onStreamEnd(), the one mechanism every layer releases
 * through: for any interleaving of reads, cancels and the upstream's end,
 * the release runs exactly once, and only once the stream is over.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { holding, type CallEnd } from '../../../sidecar/proxy/holding.js';
import { answer, DrivenStream, nextOf, streamOf } from '../../support/layer-kit.js';

type Step = 'push' | 'read' | 'cancel' | 'end' | 'fail';

describe('holding()', () => {
  it('releases at once for an answer and for a throw', async () => {
    const ends: CallEnd[] = [];
    await holding(async () => answer(), (e) => ends.push(e));
    await assert.rejects(holding(async () => Promise.reject(new Error('x')), (e) => ends.push(e)));
    assert.deepEqual(ends.map((e) => e.kind), ['returned', 'threw']);
  });

  it('releases a stream exactly once, when it is over, whatever the order of reads, cancels and ends', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.constantFrom<Step>('push', 'read', 'cancel', 'end', 'fail'), { maxLength: 30 }), async (steps) => {
        const body = new DrivenStream();
        let releases = 0;
        const outcome = await holding(async () => streamOf(body), () => releases++);
        if (outcome.kind !== 'stream') throw new Error('not a stream');
        let over = false;
        let reading: Promise<unknown> | undefined; // the writer reads one chunk at a time
        for (const step of steps) {
          if (step === 'push') body.push('data: x\n\n');
          if (step === 'end') body.end();
          if (step === 'fail') body.fail();
          if (step === 'cancel') {
            outcome.body.cancel();
            over = true;
          }
          if (step === 'read' && !reading) {
            reading = nextOf(outcome.body).then((r) => {
              if (r.kind !== 'chunk') over = true;
              reading = undefined;
            });
          }
          await new Promise((r) => setImmediate(r));
          assert.equal(releases, over ? 1 : 0, `after ${step}: ${releases} releases`);
        }
        outcome.body.cancel(); // the server's finally
        await reading;
        assert.equal(releases, 1);
      }),
      { numRuns: 300 },
    );
  });
});
