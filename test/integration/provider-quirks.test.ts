/**
 * OpenAI-compatible providers as they are, where their streams differ from
 * OpenAI's, read through the openai SDK via a real sidecar: OpenRouter's
 * `: OPENROUTER PROCESSING` comments before the first token (keep-alives,
 * not content), Azure OpenAI's first chunk of prompt_filter_results with no
 * choices (on its deployment path, with api-version and api-key), and a
 * Gemini-style stream that ends on its finish and usage without [DONE].
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import OpenAI from 'openai';
import { stringify } from 'yaml';
import { startRawUpstream } from '../support/raw-upstream.js';
import { spawnSidecar } from '../support/sidecar-process.js';

const head = 'HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n';
const chunk = (text: string) => `${Buffer.byteLength(text).toString(16)}\r\n${text}\r\n`;
const data = (json: object) => `data: ${JSON.stringify(json)}\n\n`;
const delta = (content: string, finish: string | null = null) => data({ id: 'x', object: 'chat.completion.chunk', model: 'm', choices: [{ index: 0, delta: { content }, finish_reason: finish }] });
const WORDS = ['The ', 'answer ', 'is ', '42.'];

async function read(client: OpenAI): Promise<{ text: string; finish: string | null | undefined; usage: unknown }> {
  const seen = { text: '', finish: undefined as string | null | undefined, usage: undefined as unknown };
  for await (const c of await client.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'q' }], stream: true, stream_options: { include_usage: true } })) {
    seen.text += c.choices[0]?.delta.content ?? '';
    seen.finish = c.choices[0]?.finish_reason ?? seen.finish;
    seen.usage = c.usage ?? seen.usage;
  }
  return seen;
}

describe('OpenAI-compatible providers as they are', { concurrency: true }, () => {
  it('OpenRouter: comments before the first token are keep-alives, relayed, and the answer is whole', async (t) => {
    const upstream = await startRawUpstream(t, (socket) => {
      socket.write(head + chunk(': OPENROUTER PROCESSING\n\n'));
      setTimeout(() => socket.write(chunk(': OPENROUTER PROCESSING\n\n')), 300);
      setTimeout(() => socket.end(chunk(WORDS.map((w) => delta(w)).join('') + delta('', 'stop') + 'data: [DONE]\n\n') + '0\r\n\r\n'), 600);
    });
    const sidecar = await spawnSidecar(t, stringify({ upstreams: [{ name: 'openrouter', url: upstream.url }] }));
    const seen = await read(new OpenAI({ apiKey: 'sk-or', baseURL: `${sidecar.dataUrl}/openrouter/api/v1`, maxRetries: 0 }));
    assert.equal(seen.text, WORDS.join(''));
    assert.equal(seen.finish, 'stop');
  });

  it('Azure OpenAI: a first chunk of prompt_filter_results with no choices, on the deployment path with api-version and api-key', async (t) => {
    const paths: string[] = [];
    const keys: (string | undefined)[] = [];
    const upstream = await startRawUpstream(t, (socket, request) => {
      paths.push(request.split(' ')[1]!);
      keys.push(/^api-key: (.*)$/im.exec(request)?.[1]?.trim());
      const filter = data({ id: '', object: '', created: 0, model: '', choices: [], prompt_filter_results: [{ prompt_index: 0, content_filter_results: { hate: { filtered: false, severity: 'safe' } } }] });
      socket.end(head + chunk(filter + WORDS.map((w) => delta(w)).join('') + delta('', 'stop') + 'data: [DONE]\n\n') + '0\r\n\r\n');
    });
    const sidecar = await spawnSidecar(t, stringify({ upstreams: [{ name: 'azure', url: upstream.url }] }));
    const client = new OpenAI({ apiKey: 'unused', baseURL: `${sidecar.dataUrl}/azure/openai/deployments/gpt4o`, defaultQuery: { 'api-version': '2024-10-21' }, defaultHeaders: { 'api-key': 'azure-key' }, maxRetries: 0 });
    const seen = await read(client);
    assert.equal(seen.text, WORDS.join(''));
    assert.equal(paths[0], '/openai/deployments/gpt4o/chat/completions?api-version=2024-10-21');
    assert.equal(keys[0], 'azure-key', 'the app\'s api-key goes to the upstream it addressed');
  });

  it('Gemini-style: a stream that ends on its finish and usage without [DONE] is whole, and the app gets the [DONE] it expects', async (t) => {
    const upstream = await startRawUpstream(t, (socket) => {
      const last = data({ id: 'x', object: 'chat.completion.chunk', model: 'gemini-2.5-flash', choices: [{ index: 0, delta: { content: '', role: 'assistant' }, finish_reason: 'stop' }], usage: { prompt_tokens: 5, completion_tokens: 4, total_tokens: 9 } });
      socket.end(head + chunk(WORDS.map((w) => delta(w)).join('') + last) + '0\r\n\r\n');
    });
    const sidecar = await spawnSidecar(t, stringify({ upstreams: [{ name: 'gemini', url: upstream.url }] }));
    const seen = await read(new OpenAI({ apiKey: 'g', baseURL: `${sidecar.dataUrl}/gemini/v1beta/openai`, maxRetries: 0 }));
    assert.equal(seen.text, WORDS.join(''));
    assert.equal(seen.finish, 'stop');
    assert.deepEqual(seen.usage, { prompt_tokens: 5, completion_tokens: 4, total_tokens: 9 });
  });

  it('Azure as a fallback tier of an OpenAI upstream: its fixed api-version and its own api-key, never the app\'s credentials', async (t) => {
    const primary = await startRawUpstream(t, (socket) => socket.end('HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n'));
    const seen: { path: string; key?: string; authorization?: string }[] = [];
    const azure = await startRawUpstream(t, (socket, request) => {
      seen.push({ path: request.split(' ')[1]!, key: /^api-key: (.*)$/im.exec(request)?.[1]?.trim(), authorization: /^authorization: (.*)$/im.exec(request)?.[1]?.trim() });
      socket.end(head + chunk(WORDS.map((w) => delta(w)).join('') + delta('', 'stop') + 'data: [DONE]\n\n') + '0\r\n\r\n');
    });
    process.env.BW_TEST_AZURE_KEY = 'azure-key-from-policy';
    t.after(() => delete process.env.BW_TEST_AZURE_KEY);
    const sidecar = await spawnSidecar(
      t,
      stringify({
        upstreams: [
          { name: 'openai', url: primary.url, retry: { attempts: 1 }, fallback: [{ upstream: 'azure', model: 'gpt4o' }] },
          { name: 'azure', url: `${azure.url}/openai`, apiVersion: '2024-10-21', auth: { env: 'BW_TEST_AZURE_KEY', header: 'api-key', prefix: '' } },
        ],
      }),
    );
    const seenByApp = await read(new OpenAI({ apiKey: 'sk-app', baseURL: `${sidecar.dataUrl}/openai/v1`, defaultQuery: { 'api-version': 'app-version' }, maxRetries: 0 }));
    assert.equal(seenByApp.text, WORDS.join(''));
    assert.deepEqual(seen, [{ path: '/openai/v1/chat/completions?api-version=2024-10-21', key: 'azure-key-from-policy', authorization: undefined }]);
  });
});

