import { strict as assert } from 'node:assert';
import { createServer, get, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import type { ConfigSnapshot } from '../../api/index.js';
import { ConfigHub, type Desired } from '../../controller/config-hub.js';

describe('a stopping controller\'s config streams', () => {
  it('end with a drain notice after what they sent, and close() resolves once it is written', async (t) => {
    const hub = new ConfigHub(() => ({ reason: 'no policy selects this pod' }), () => new Set(), () => {});
    const server: Server = createServer((req, res) => {
      const detach = hub.attach('shop/chat-1', res);
      req.on('close', detach);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.after(() => server.close());
    const received = new Promise<string>((resolve, reject) => {
      get(`http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/config`, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          text += d;
          if (text.includes('event: no-policy')) void hub.close().then(() => (closed = true));
        });
        res.on('end', () => resolve(text));
      }).on('error', reject);
    });
    let closed = false;
    const text = await received;
    assert.match(text, /^event: no-policy\ndata: .*\n\nevent: draining\ndata: \{\}\n\n$/);
    await new Promise((resolve) => setImmediate(resolve));
    assert.ok(closed, 'close() resolved');
    assert.equal(hub.size, 0);
  });

  it('sends a snapshot again when the pod count moves by a step (exact to 8, then a quarter), not on every pod', () => {
    let selectedPods = 1;
    const snapshot = (): ConfigSnapshot => ({ version: { source: 'controller', policy: 'shop/chat', generation: 1, hash: 'h' }, spec: { upstreams: [] } as unknown as ConfigSnapshot['spec'], selectedPods });
    const hub = new ConfigHub((): Desired => ({ snapshot: snapshot() }), () => new Set(), () => {});
    const written: string[] = [];
    const res = { writeHead: () => res, write: (text: string) => written.push(text), end: () => {} } as unknown as Parameters<ConfigHub['attach']>[1];
    hub.attach('shop/chat-1', res);
    const sent: number[] = [];
    for (let pods = 1; pods <= 100; pods++) {
      selectedPods = pods;
      const before = written.length;
      hub.refresh('shop/chat-1');
      if (written.length > before) sent.push(pods);
    }
    void hub.close(0);
    assert.deepEqual(sent.filter((n) => n <= 8), [2, 3, 4, 5, 6, 7, 8]);
    assert.ok(sent.length <= 20, `${sent.length} resends between 1 and 100 pods: ${sent.join(', ')}`);
    const last = written.at(-1)!;
    assert.match(last, /"selectedPods":(\d+)/);
    assert.ok(Number(/"selectedPods":(\d+)/.exec(last)![1]) >= 80, 'the count sent is exact when it is sent');
  });
});
