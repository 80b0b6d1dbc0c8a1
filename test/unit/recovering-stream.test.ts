import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { openai } from '../../sidecar/proxy/dialects/openai.js';
import { MAX_RECOVERABLE_CHARS, RecoveringStream, type RecoveryResult } from '../../sidecar/proxy/recovering-stream.js';
import type { StreamBody, StreamEnd } from '../../sidecar/proxy/stream-body.js';

const event = (content: string) => `data: ${JSON.stringify({ choices: [{ index: 0, delta: { content } }] })}\n\n`;

/** A stream that sends `pieces`, then ends with `end`. */
function scripted(pieces: string[], end: StreamEnd): StreamBody {
  const queue = [...pieces];
  return { read: async () => (queue.length ? Buffer.from(queue.shift()!) : end), cancel() {} };
}

async function drain(body: StreamBody): Promise<{ text: string; end: StreamEnd }> {
  let text = '';
  for (;;) {
    const next = await body.read();
    if (!Buffer.isBuffer(next)) return { text, end: next };
    text += next.toString('utf8');
  }
}

const cut: StreamEnd = { kind: 'failed', failure: 'reset', detail: 'stream broken' };

describe('recovering stream', () => {
  it('recovers a stream that sent little, and keeps no copy past MAX_RECOVERABLE_CHARS, so a longer one is not recovered', async () => {
    for (const [size, recovered] of [[1000, true], [MAX_RECOVERABLE_CHARS + 1, false]] as const) {
      const sent = 'x'.repeat(size);
      let asked = 0;
      const results: RecoveryResult[] = [];
      const stream = new RecoveringStream(scripted([event(sent)], cut), {
        dialect: openai,
        framing: 'sse',
        maxRecoveries: 1,
        again: async () => (asked++, scripted([event(sent + 'rest'), 'data: [DONE]\n\n'], { kind: 'complete' })),
        onRecovery: (r) => results.push(r),
      });
      const { end } = await drain(stream);
      assert.equal(asked, recovered ? 1 : 0, `${size} characters sent`);
      assert.equal(end.kind, recovered ? 'complete' : 'failed');
      assert.deepEqual(results, [recovered ? 'recovered' : 'refused']);
    }
  });
});
