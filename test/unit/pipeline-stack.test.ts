/**
 * The pipeline's stacks are built per upstream config, holding only the
 * layers that upstream enables (Layer.enabledFor), once for each config
 * object: a config applied (new objects) gets new stacks.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { UpstreamConfig } from '../../sidecar/config/index.js';
import { enabledWhen, type Handler, type Layer, type ProxyRequest, type RequestContext } from '../../sidecar/proxy/handler.js';
import { stack } from '../../sidecar/proxy/pipeline.js';

describe('the pipeline\'s per-upstream stacks', () => {
  it('hold only the layers an upstream enables, built once per config object', async () => {
    const trace: string[] = [];
    let built = 0;
    const named = (name: string) => (inner: Handler) => {
      built++;
      return (req: ProxyRequest, ctx: RequestContext) => {
        trace.push(name);
        return inner(req, ctx);
      };
    };
    const always: Layer = named('always');
    const faulty: Layer = enabledWhen((config) => config.faults.length > 0, named('faults'));
    const handler = stack([always, faulty], async () => ({ kind: 'cancelled' }));
    const config = (faults: UpstreamConfig['faults']) => ({ name: 'u', faults }) as unknown as UpstreamConfig;
    const call = async (c: UpstreamConfig) => {
      trace.length = 0;
      await handler({ upstream: { config: c } } as unknown as ProxyRequest, {} as RequestContext);
      return [...trace];
    };
    const plain = config([]);
    assert.deepEqual(await call(plain), ['always'], 'no faults: no faults layer');
    assert.deepEqual(await call(plain), ['always']);
    assert.equal(built, 1, 'the same config object: its stack was built once');
    const chaos = config([{ percent: 100, abortStatus: 503 }]);
    assert.deepEqual(await call(chaos), ['always', 'faults'], 'a config with faults has the layer');
    assert.equal(built, 3);
    assert.deepEqual(await call(config([])), ['always'], 'a new config object gets a stack of its own');
    assert.equal(built, 4);
  });
});
