/**
 * Uploads and binary answers pass through a real sidecar: a 30 MB multipart
 * upload (an audio transcription or a file, larger than retry.maxBodyBytes)
 * is streamed to the upstream once and never buffered past the cap, and
 * binary answers (speech audio) reach the app byte for byte, through the
 * official openai SDK.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it, type TestContext } from 'node:test';
import OpenAI, { toFile } from 'openai';
import { stringify } from 'yaml';
import { spawnSidecar } from '../support/sidecar-process.js';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** An upstream that hashes every request body it gets, and answers speech requests with `audio`. */
async function upstream(t: TestContext, audio: Buffer) {
  const received: { path: string; bytes: number; sha: string; contentType: string }[] = [];
  const server = createServer((req, res) => {
    const hash = createHash('sha256');
    let bytes = 0;
    req.on('data', (c: Buffer) => {
      bytes += c.length;
      hash.update(c);
    });
    req.on('end', () => {
      received.push({ path: req.url ?? '', bytes, sha: hash.digest('hex'), contentType: String(req.headers['content-type']) });
      if (req.url?.startsWith('/v1/audio/speech')) return void res.writeHead(200, { 'content-type': 'audio/mpeg', 'content-length': audio.length }).end(audio);
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ text: `got ${bytes} bytes` }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise((resolve) => server.close(resolve)));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, received };
}

describe('uploads and binary answers', { concurrency: true }, () => {
  it('streams a 30 MB multipart upload to the upstream once, whole, and answers', async (t) => {
    const up = await upstream(t, Buffer.alloc(0));
    const sidecar = await spawnSidecar(t, stringify({ upstreams: [{ name: 'openai', url: up.url }] }));
    const client = new OpenAI({ apiKey: 'sk-app', baseURL: `${sidecar.dataUrl}/openai/v1`, maxRetries: 0 });
    const audio = randomBytes(30 * 1024 * 1024);
    const result = await client.audio.transcriptions.create({ file: await toFile(audio, 'meeting.wav', { type: 'audio/wav' }), model: 'whisper-1' });
    assert.equal(up.received.length, 1, 'sent once');
    const got = up.received[0]!;
    assert.equal(got.path, '/v1/audio/transcriptions');
    assert.match(got.contentType, /^multipart\/form-data; boundary=/);
    assert.ok(got.bytes > audio.length, `the whole form (${got.bytes} bytes) reached the upstream`);
    assert.equal(result.text, `got ${got.bytes} bytes`);
    const status = (await (await fetch(`${sidecar.adminUrl}/status`)).json()) as { bufferedBytes?: number };
    assert.ok((status.bufferedBytes ?? 0) === 0, 'nothing is held once it is over');
  });

  it('relays speech audio byte for byte', async (t) => {
    const audio = randomBytes(1024 * 1024 + 7);
    const up = await upstream(t, audio);
    const sidecar = await spawnSidecar(t, stringify({ upstreams: [{ name: 'openai', url: up.url }] }));
    const client = new OpenAI({ apiKey: 'sk-app', baseURL: `${sidecar.dataUrl}/openai/v1`, maxRetries: 0 });
    const speech = await client.audio.speech.create({ model: 'gpt-4o-mini-tts', voice: 'alloy', input: 'Hello.' });
    assert.equal(speech.headers.get('content-type'), 'audio/mpeg');
    const bytes = Buffer.from(await speech.arrayBuffer());
    assert.equal(bytes.length, audio.length);
    assert.equal(sha256(bytes), sha256(audio));
  });
});
