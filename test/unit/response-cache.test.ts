import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ResponseCache } from '../../sidecar/proxy/answers/response-cache.js';

const key = (body: string) => ResponseCache.key('primary', '/v1/chat/completions', Buffer.from(body));

describe('response cache keys', () => {
  it('ignore the stream flags wherever they stand', () => {
    const plain = key('{"model":"m","messages":[{"role":"user","content":"hi"}]}');
    assert.equal(key('{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}'), plain);
    assert.equal(key('{"stream":true,"model":"m","messages":[{"role":"user","content":"hi"}]}'), plain);
    assert.equal(key('{"model":"m","stream":false,"messages":[{"role":"user","content":"hi"}]}'), plain);
    assert.equal(key('{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}'), plain);
  });

  it('tell different requests apart, also a "stream" inside the content', () => {
    const plain = key('{"model":"m","messages":[{"role":"user","content":"hi"}]}');
    assert.notEqual(key('{"model":"m","messages":[{"role":"user","content":"hello"}]}'), plain);
    assert.notEqual(ResponseCache.key('other', '/v1/chat/completions', Buffer.from('{"model":"m","messages":[{"role":"user","content":"hi"}]}')), plain);
    assert.notEqual(key('{"model":"m","messages":[{"role":"user","content":"say \\"stream\\": true"}]}'), key('{"model":"m","messages":[{"role":"user","content":"say "}]}'));
  });

  it('leaves bodies that are not JSON objects uncached', () => {
    assert.equal(key('not json'), undefined);
    assert.equal(ResponseCache.key('p', '/', null), ResponseCache.key('p', '/', Buffer.from('{}')));
  });
});
