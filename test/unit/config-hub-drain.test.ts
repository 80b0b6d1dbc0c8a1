import { strict as assert } from 'node:assert';
import { createServer, get, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { ConfigHub } from '../../controller/config-hub.js';

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
});
