/**
 * Every stream's tokens are counted. A Chat Completions stream whose app did
 * not ask for its usage (the openai SDK's default) is asked for it by the
 * sidecar, and the app reads exactly the bytes it would have read without
 * the sidecar (no usage chunk, no `usage: null` in its chunks); budgets and
 * metrics count the real usage. A stream whose upstream reports no usage at
 * all is charged its output by the text it sent.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import OpenAI from 'openai';
import { stringify } from 'yaml';
import { CANONICAL, startModelUpstream } from '../support/model-upstream.js';
import { startRawUpstream } from '../support/raw-upstream.js';
import { spawnSidecar } from '../support/sidecar-process.js';

const REQUEST = { model: 'small-model', messages: [{ role: 'user', content: 'count to 60' }], stream: true, temperature: 0 };

async function bytesOf(url: string, body: object): Promise<string> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer sk-app' }, body: JSON.stringify(body) });
  return res.text();
}

const metric = (text: string, pattern: RegExp) => Number(pattern.exec(text)?.[1] ?? NaN);

describe('usage for every stream', { concurrency: true }, () => {
  it('asks a stream for its usage when the app did not, hides it from the app (byte for byte), and counts it in the budget and the metrics', async (t) => {
    const upstream = await startModelUpstream(t, { realistic: true });
    const sidecar = await spawnSidecar(t, stringify({ upstreams: [{ name: 'primary', url: upstream.url }], budget: { window: 'hour', tokens: 1_000_000 } }));
    const viaSidecar = await bytesOf(`${sidecar.dataUrl}/primary/v1/chat/completions`, REQUEST);
    const direct = await bytesOf(`${upstream.url}/v1/chat/completions`, REQUEST);
    assert.equal(upstream.calls[0]!.json.stream_options?.include_usage, true, 'the sidecar asked for the usage');
    assert.equal(upstream.calls[1]!.json.stream_options, undefined);
    assert.equal(viaSidecar, direct, 'the app read what it would have read without the sidecar');
    assert.doesNotMatch(viaSidecar, /"usage"/);

    // Through the SDK with its defaults, as an app runs it.
    const client = new OpenAI({ apiKey: 'sk-app', baseURL: `${sidecar.dataUrl}/primary/v1`, maxRetries: 0 });
    let text = '';
    for await (const chunk of await client.chat.completions.create({ ...REQUEST, stream: true } as OpenAI.ChatCompletionCreateParamsStreaming)) {
      assert.equal(chunk.usage, undefined, 'no usage the app did not ask for');
      text += chunk.choices[0]?.delta.content ?? '';
    }
    assert.equal(text, CANONICAL);

    const metrics = await (await fetch(`${sidecar.adminUrl}/metrics`)).text();
    assert.equal(metric(metrics, /breakwater_tokens_total\{upstream="primary",model="[^"]*",type="output"\} (\d+)/), 120, 'two streams of 60 output tokens, as the upstream reported');
    assert.equal(metric(metrics, /breakwater_budget_spent\{scope="policy",upstream="",unit="tokens"\} (\d+)/), 2 * (11 + 60), 'the budget charged the reported usage');
  });

  it('passes the usage chunk on to an app that asked for it, and asks nothing more', async (t) => {
    const upstream = await startModelUpstream(t, { realistic: true });
    const sidecar = await spawnSidecar(t, stringify({ upstreams: [{ name: 'primary', url: upstream.url }] }));
    const asked = { ...REQUEST, stream_options: { include_usage: true } };
    const viaSidecar = await bytesOf(`${sidecar.dataUrl}/primary/v1/chat/completions`, asked);
    const direct = await bytesOf(`${upstream.url}/v1/chat/completions`, asked);
    assert.equal(viaSidecar, direct);
    assert.match(viaSidecar, /"completion_tokens":60/);
  });

  it('charges a stream whose upstream reports no usage its output by the text it sent', async (t) => {
    const chunks = CANONICAL.match(/\S+ /g)!.map((content) => `data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', model: 'm', choices: [{ index: 0, delta: { content }, finish_reason: null }] })}\n\n`);
    const finish = `data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', model: 'm', choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] })}\n\ndata: [DONE]\n\n`;
    const upstream = await startRawUpstream(t, (socket) => {
      const body = chunks.join('') + finish;
      socket.end(`HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    });
    const sidecar = await spawnSidecar(t, stringify({ upstreams: [{ name: 'primary', url: upstream.url }], budget: { window: 'hour', tokens: 1_000_000 } }));
    const app = await bytesOf(`${sidecar.dataUrl}/primary/v1/chat/completions`, REQUEST);
    assert.match(app, /data: \[DONE\]/);
    const metrics = await (await fetch(`${sidecar.adminUrl}/metrics`)).text();
    const spent = metric(metrics, /breakwater_budget_spent\{scope="policy",upstream="",unit="tokens"\} (\d+)/);
    const output = Math.ceil(CANONICAL.length / 4);
    const input = spent - output;
    assert.ok(input > 0 && input < 60, `charged ${spent}: ${output} output tokens by the text (${CANONICAL.length} characters) and the input estimate (${input})`);
  });

  it('charges a stream that breaks, or that the app gives up, at least what it sent, also without max_tokens', async (t) => {
    const text = 'x'.repeat(4000);
    const upstream = await startRawUpstream(t, (socket) => {
      const chunk = `data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', model: 'm', choices: [{ index: 0, delta: { content: text }, finish_reason: null }] })}\n\n`;
      socket.write(`HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n${Buffer.byteLength(chunk).toString(16)}\r\n${chunk}\r\n`);
      setTimeout(() => socket.resetAndDestroy(), 30);
    });
    const sidecar = await spawnSidecar(t, stringify({ upstreams: [{ name: 'primary', url: upstream.url, streamRecovery: { maxRecoveries: 0 } }], budget: { window: 'hour', tokens: 1_000_000 } }));
    await bytesOf(`${sidecar.dataUrl}/primary/v1/chat/completions`, REQUEST);
    const metrics = await (await fetch(`${sidecar.adminUrl}/metrics`)).text();
    const spent = metric(metrics, /breakwater_budget_spent\{scope="policy",upstream="",unit="tokens"\} (\d+)/);
    assert.ok(spent >= 1000, `a broken stream that sent ${text.length} characters was charged ${spent} tokens`);
  });

  it('asks again as the app asked when a server refuses stream_options (Azure before 2024-09), at once, and stops asking that upstream (red team, issue 25)', async (t) => {
    const bodies: string[] = [];
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c));
      req.on('end', () => {
        bodies.push(body);
        if (body.includes('stream_options')) {
          return void res.writeHead(400, { 'content-type': 'application/json' }).end('{"error":{"message":"Unrecognized request argument supplied: stream_options","type":"invalid_request_error","param":null,"code":null}}');
        }
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        for (const text of ['Hel', 'lo']) res.write(`data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', model: 'gpt-4o', choices: [{ index: 0, delta: { content: text }, finish_reason: null }] })}\n\n`);
        res.end(`data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', model: 'gpt-4o', choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] })}\n\ndata: [DONE]\n\n`);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.after(() => new Promise((resolve) => server.close(resolve)));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const sidecar = await spawnSidecar(t, stringify({ upstreams: [{ name: 'azure', url, retry: { attempts: 1 } }] }));
    const client = new OpenAI({ apiKey: 'sk-app', baseURL: `${sidecar.dataUrl}/azure/v1`, maxRetries: 0 });
    for (let i = 0; i < 2; i++) {
      let text = '';
      for await (const chunk of await client.chat.completions.create({ ...REQUEST, stream: true } as OpenAI.ChatCompletionCreateParamsStreaming)) text += chunk.choices[0]?.delta.content ?? '';
      assert.equal(text, 'Hello');
    }
    assert.equal(bodies.length, 3, 'asked once with stream_options, then as the app asked');
    assert.deepEqual(JSON.parse(bodies[1]!), REQUEST, 'the app\'s own body');
  });
});

