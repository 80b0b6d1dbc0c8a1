import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Handler, RequestContext } from '../../../sidecar/proxy/handler.js';
import { launch } from '../../../sidecar/proxy/side-by-side.js';
import { answer, contextAt, ManualClock, requestTo, upstreamOf } from '../../support/layer-kit.js';

describe('a run side by side (hedges, first-token races)', () => {
  it("is aborted with the app's going away, also when the app went before the run was launched", async () => {
    const clock = new ManualClock();
    const upstream = upstreamOf(clock);
    for (const goneBefore of [false, true]) {
      const ctx = contextAt(clock);
      const seen: RequestContext[] = [];
      const inner: Handler = async (_req, child) => (seen.push(child), answer());
      if (goneBefore) ctx.abort();
      const run = launch(inner, requestTo(upstream), ctx, clock);
      if (!goneBefore) ctx.abort();
      await run.result;
      assert.equal(seen[0]!.signal.aborted, true, goneBefore ? 'gone before the launch' : 'gone after the launch');
    }
  });
});
