/**
 * Uploads and binary answers pass through a real sidecar: a 30 MB multipart
 * upload (an audio transcription or a file, larger than retry.maxBodyBytes)
 * is streamed to the upstream once and never buffered past the cap, and
 * binary answers (speech audio) reach the app byte for byte, through the
 * official openai SDK.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it, type TestContext } from 'node:test';
import OpenAI, { toFile } from 'openai';
import { stringify } from 'yaml';
import { spawnSidecar } from '../support/sidecar-process.js';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** The events of a streamed transcription, as OpenAI sends them: no [DONE], the stream ends after transcript.text.done. */
const TRANSCRIPT_EVENTS = [
  { type: 'transcript.text.delta', delta: 'Hello', logprobs: [] },
  { type: 'transcript.text.delta', delta: ' world.' },
  { type: 'transcript.text.done', text: 'Hello world.', usage: { type: 'tokens', input_tokens: 14, input_token_details: { text_tokens: 0, audio_tokens: 14 }, output_tokens: 3, total_tokens: 17 } },
];

/** A speech stream (stream_format: sse): base64 audio in speech.audio.delta events, then speech.audio.done with usage. */
const SPEECH_EVENTS = (audio: Buffer) => [
  { type: 'speech.audio.delta', audio: audio.subarray(0, audio.length >> 1).toString('base64') },
  { type: 'speech.audio.delta', audio: audio.subarray(audio.length >> 1).toString('base64') },
  { type: 'speech.audio.done', usage: { input_tokens: 6, output_tokens: 120, total_tokens: 126 } },
];

function sseEvents(res: ServerResponse, events: object[]) {
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8' });
  for (const event of events) res.write(`data: ${JSON.stringify(event)}\n\n`);
  res.end();
}

/** An upstream that hashes every request body it gets, and answers speech requests with `audio`. */
async function upstream(t: TestContext, audio: Buffer) {
  const received: { path: string; bytes: number; sha: string; contentType: string }[] = [];
  const server = createServer((req, res) => {
    const hash = createHash('sha256');
    let bytes = 0;
    let text = ''; // the first 64 KiB, to see whether the request asked for a stream
    req.on('data', (c: Buffer) => {
      bytes += c.length;
      hash.update(c);
      if (text.length < 65_536) text += c.toString('latin1');
    });
    req.on('end', () => {
      received.push({ path: req.url ?? '', bytes, sha: hash.digest('hex'), contentType: String(req.headers['content-type']) });
      const streamed = /"stream_format":"sse"|name="stream"\r\n\r\ntrue/.test(text);
      if (req.url?.startsWith('/v1/audio/speech') && streamed) return void sseEvents(res, SPEECH_EVENTS(audio));
      if (req.url?.startsWith('/v1/audio/speech')) return void res.writeHead(200, { 'content-type': 'audio/mpeg', 'content-length': audio.length }).end(audio);
      if (req.url?.startsWith('/v1/audio/transcriptions') && streamed) return void sseEvents(res, TRANSCRIPT_EVENTS);
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

  it('relays a streamed transcription (no [DONE]) to the SDK whole, with no error after it, and keeps the breaker closed', async (t) => {
    const up = await upstream(t, Buffer.alloc(0));
    const sidecar = await spawnSidecar(t, stringify({ upstreams: [{ name: 'openai', url: up.url, circuitBreaker: { consecutiveFailures: 2 } }] }));
    const client = new OpenAI({ apiKey: 'sk-app', baseURL: `${sidecar.dataUrl}/openai/v1`, maxRetries: 0 });
    for (let i = 0; i < 3; i++) {
      const stream = await client.audio.transcriptions.create({ file: await toFile(randomBytes(2048), 'a.wav', { type: 'audio/wav' }), model: 'gpt-4o-transcribe', stream: true });
      const types: string[] = [];
      for await (const event of stream) types.push(event.type);
      assert.deepEqual(types, ['transcript.text.delta', 'transcript.text.delta', 'transcript.text.done']);
    }
    const status = (await (await fetch(`${sidecar.adminUrl}/status`)).json()) as { upstreams: { name: string; breakers: { state: string }[] }[] };
    assert.ok(status.upstreams[0]!.breakers.every((b) => b.state === 'closed'), JSON.stringify(status.upstreams[0]));
  });

  it('relays streamed speech (stream_format sse) event for event, the audio whole', async (t) => {
    const audio = randomBytes(64 * 1024 + 3);
    const up = await upstream(t, audio);
    const sidecar = await spawnSidecar(t, stringify({ upstreams: [{ name: 'openai', url: up.url }] }));
    const client = new OpenAI({ apiKey: 'sk-app', baseURL: `${sidecar.dataUrl}/openai/v1`, maxRetries: 0 });
    const speech = await client.audio.speech.create({ model: 'gpt-4o-mini-tts', voice: 'alloy', input: 'Hello.', stream_format: 'sse' });
    const text = await speech.text();
    const events = text.split('\n\n').filter((e) => e !== '').map((e) => JSON.parse(e.replace(/^data: /, '')) as { type: string; audio?: string });
    assert.deepEqual(events.map((e) => e.type), ['speech.audio.delta', 'speech.audio.delta', 'speech.audio.done']);
    assert.equal(sha256(Buffer.concat(events.filter((e) => e.audio).map((e) => Buffer.from(e.audio!, 'base64')))), sha256(audio));
  });

  it('answers an embeddings call that fails with the failure, never with a static tier\'s chat message', async (t) => {
    let calls = 0;
    const server = createServer((req, res) => {
      calls++;
      req.resume();
      req.on('end', () => res.writeHead(503, { 'content-type': 'application/json' }).end('{"error":{"message":"overloaded","type":"server_error"}}'));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.after(() => new Promise((resolve) => server.close(resolve)));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const sidecar = await spawnSidecar(t, stringify({ upstreams: [{ name: 'openai', url, retry: { attempts: 1 }, fallback: [{ static: { message: 'The assistant is busy.' } }] }] }));
    const client = new OpenAI({ apiKey: 'sk-app', baseURL: `${sidecar.dataUrl}/openai/v1`, maxRetries: 0 });
    await assert.rejects(client.embeddings.create({ model: 'text-embedding-3-small', input: ['a'] }), (err: { status?: number }) => err.status === 503);
    const chat = await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(chat.choices[0]!.message.content, 'The assistant is busy.', 'a chat call still gets the static tier');
    assert.equal(calls, 2);
  });

  it('sends a pass-through POST again only when the upstream did not take it; a GET as often as the policy says (red team, issue 25)', async (t) => {
    const seen: string[] = [];
    let images = 0;
    const server = createServer((req, res) => {
      seen.push(`${req.method} ${req.url}`);
      req.resume();
      req.on('end', () => {
        if (req.url === '/v1/images/generations' && images++ === 0) return void res.writeHead(429, { 'retry-after-ms': '10', 'content-type': 'application/json' }).end('{"error":{"message":"slow down"}}');
        if (req.url === '/v1/images/generations') return void setTimeout(() => res.writeHead(200, { 'content-type': 'application/json' }).end('{"data":[]}'), 5000); // past firstByte: it may be generating
        res.writeHead(503, { 'content-type': 'application/json' }).end('{"error":{"message":"down"}}');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.after(() => new Promise((resolve) => { server.closeAllConnections(); server.close(resolve); }));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const sidecar = await spawnSidecar(t, stringify({ upstreams: [{ name: 'openai', url, timeouts: { firstByte: '2500ms' }, retry: { attempts: 3, backoff: { base: '10ms', max: '10ms' } }, hedge: { delay: '100ms' } }] }));
    const image = await fetch(`${sidecar.dataUrl}/openai/v1/images/generations`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"model":"gpt-image-1","prompt":"a cat"}' });
    assert.equal(image.status, 504, 'the attempt that may be generating is not sent again');
    assert.deepEqual(seen.filter((s) => s.includes('images')), ['POST /v1/images/generations', 'POST /v1/images/generations'], 'retried once after the 429, which it did not take; no hedge; not after the timeout');
    const models = await fetch(`${sidecar.dataUrl}/openai/v1/models`);
    assert.equal(models.status, 503);
    assert.ok(seen.filter((s) => s === 'GET /v1/models').length >= 3, 'a GET is retried as the policy says (and may be hedged too)');
  });

  it('relays pass-through answers as bytes: a file larger than maxAnswerBytes, a 2 MB first event, and a cut body as a broken one (red team, issue 25)', async (t) => {
    const file = randomBytes(24 * 1024 * 1024);
    const partial = `data: ${JSON.stringify({ type: 'image_generation.partial_image', b64_json: randomBytes(1536 * 1024).toString('base64') })}\n\n`;
    const server = createServer((req, res) => {
      req.resume();
      if (req.url === '/v1/files/file-1/content') return void res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': file.length }).end(file);
      if (req.url === '/v1/images/generations') return void res.writeHead(200, { 'content-type': 'text/event-stream' }).end(partial);
      // A download cut half way: content-length says more than comes.
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': file.length });
      res.write(file.subarray(0, 1024 * 1024), () => res.destroy());
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.after(() => new Promise((resolve) => { server.closeAllConnections(); server.close(resolve); }));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const sidecar = await spawnSidecar(t, stringify({ upstreams: [{ name: 'openai', url, limits: { maxAnswerBytes: '1Mi', maxStreamHeadBytes: '64Ki' } }] }));
    const client = new OpenAI({ apiKey: 'sk-app', baseURL: `${sidecar.dataUrl}/openai/v1`, maxRetries: 0 });
    const content = Buffer.from(await (await client.files.content('file-1')).arrayBuffer());
    assert.equal(sha256(content), sha256(file), 'a 24 MiB file through a 1 MiB answer limit');
    const image = await fetch(`${sidecar.dataUrl}/openai/v1/images/generations`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"model":"gpt-image-1","prompt":"a cat","stream":true,"partial_images":1}' });
    assert.equal(image.status, 200);
    assert.equal(await image.text(), partial, 'a first event of 2 MB, byte for byte');
    const cut = await fetch(`${sidecar.dataUrl}/openai/v1/files/file-2/content`);
    assert.equal(cut.status, 200);
    await assert.rejects(cut.arrayBuffer(), 'a body cut upstream reaches the app broken, not short and whole');
    const status = (await (await fetch(`${sidecar.adminUrl}/status`)).json()) as { upstreams: { bulkhead: { inFlight: number } }[] };
    assert.equal(status.upstreams[0]!.bulkhead.inFlight, 0);
  });
});

