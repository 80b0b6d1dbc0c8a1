/**
 * A simulated LLM provider with a concurrency capacity that the test moves:
 * it streams OpenAI chat chunks (`events` of them, each after 20–50 ms by
 * default) to at most `capacity` requests at once, and answers the rest 429
 * with Retry-After: 1, as providers do past their capacity. It counts
 * attempts, refusals and the streams it holds, sampled for goodput. Also the
 * app side: one streamed chat request over keep-alive sockets, read to its
 * end, with its time to first event.
 */
import { createServer, request, Agent, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TestContext } from 'node:test';

export interface CapacityProvider {
  url: string;
  capacity: number;
  /** Streams held now. */
  inFlight: number;
  attempts: number;
  refused: number;
  /** Attempts by the tokens they asked for, per caller (the x-tenant header), of streams served. */
  tokensServed: Map<string, number>;
}

export interface ProviderOptions {
  capacity: number;
  events?: number;
  /** Gap between events: uniform in [min, max] ms. */
  gapMs?: [number, number];
}

const chunk = (text: string, finish: string | null = null) => `data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', model: 'sim', choices: [{ index: 0, delta: finish ? {} : { content: text }, finish_reason: finish }] })}\n\n`;

export async function startCapacityProvider(t: TestContext, options: ProviderOptions): Promise<CapacityProvider> {
  const { events = 60, gapMs = [20, 50] } = options;
  const state: CapacityProvider = { url: '', capacity: options.capacity, inFlight: 0, attempts: 0, refused: 0, tokensServed: new Map() };
  const server = createServer((req, res) => {
    let bytes = 0;
    req.on('data', (d: Buffer) => (bytes += d.length));
    req.on('end', () => {
      state.attempts++;
      if (state.inFlight >= state.capacity) {
        state.refused++;
        res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '1' });
        return res.end(JSON.stringify({ error: { message: 'Rate limit reached: too many requests in flight', type: 'requests', code: 'rate_limit_exceeded' } }));
      }
      state.inFlight++;
      const tenant = String(req.headers['x-tenant'] ?? '');
      state.tokensServed.set(tenant, (state.tokensServed.get(tenant) ?? 0) + Math.ceil(bytes / 4));
      let left = events;
      let done = false;
      const finish = () => {
        if (done) return;
        done = true;
        state.inFlight--;
      };
      res.on('close', finish);
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const next = () => {
        if (res.destroyed) return finish();
        if (left-- > 0) {
          res.write(chunk('tok '));
          return void setTimeout(next, gapMs[0] + Math.random() * (gapMs[1] - gapMs[0]));
        }
        res.end(chunk('', 'stop') + 'data: [DONE]\n\n');
        finish();
      };
      next();
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  t.after(() => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))));
  return state;
}

export interface StreamResult {
  status: number;
  /** The error code of a refusal the sidecar made (overloaded), if any. */
  code?: string;
  ttftMs: number;
  totalMs: number;
  events: number;
}

export const appAgent = new Agent({ keepAlive: true, maxSockets: Infinity });

/** One streamed chat request to `url`, read to its end. */
export function streamOnce(url: string, body: string, headers: Record<string, string> = {}): Promise<StreamResult> {
  const started = performance.now();
  return new Promise((resolve) => {
    const fail = () => resolve({ status: 0, ttftMs: NaN, totalMs: performance.now() - started, events: 0 });
    const req = request(url, { method: 'POST', agent: appAgent, headers: { 'content-type': 'application/json', ...headers } }, (res: IncomingMessage) => {
      let ttftMs = NaN;
      let events = 0;
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        if (Number.isNaN(ttftMs)) ttftMs = performance.now() - started;
        if (res.statusCode === 200) events += d.split('data: ').length - 1;
        else text += d;
      });
      res.on('end', () => {
        let code: string | undefined;
        try {
          code = res.statusCode === 200 ? undefined : (JSON.parse(text) as { error?: { code?: string } }).error?.code;
        } catch {}
        resolve({ status: res.statusCode ?? 0, code, ttftMs, totalMs: performance.now() - started, events });
      });
      res.on('error', fail);
    });
    req.on('error', fail);
    req.end(body);
  });
}

export interface Series {
  name: string;
  color: string;
  points: [number, number][];
  dashed?: boolean;
}

/** An SVG line chart of `series` over time (seconds), with a legend. */
export function lineChart(title: string, series: Series[], yLabel: string): string {
  const W = 900;
  const H = 420;
  const m = { l: 60, r: 20, t: 40, b: 50 };
  const all = series.flatMap((s) => s.points);
  const maxX = Math.max(1, ...all.map((p) => p[0]));
  const maxY = Math.max(1, ...all.map((p) => p[1])) * 1.1;
  const x = (v: number) => m.l + (v / maxX) * (W - m.l - m.r);
  const y = (v: number) => H - m.b - (v / maxY) * (H - m.t - m.b);
  const ticks = (max: number, n: number) => Array.from({ length: n + 1 }, (_, i) => Math.round((max * i) / n));
  const lines = series.map((s) => `<polyline fill="none" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''} points="${s.points.map(([a, b]) => `${x(a).toFixed(1)},${y(b).toFixed(1)}`).join(' ')}"/>`);
  const legend = series.map((s, i) => `<line x1="${m.l + 10 + i * 220}" y1="22" x2="${m.l + 40 + i * 220}" y2="22" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/><text x="${m.l + 45 + i * 220}" y="26" font-size="12">${s.name}</text>`);
  const xt = ticks(maxX, 10).map((v) => `<text x="${x(v)}" y="${H - m.b + 18}" font-size="11" text-anchor="middle">${v}</text>`);
  const yt = ticks(maxY, 5).map((v) => `<text x="${m.l - 6}" y="${y(v) + 4}" font-size="11" text-anchor="end">${v}</text><line x1="${m.l}" x2="${W - m.r}" y1="${y(v)}" y2="${y(v)}" stroke="#eee"/>`);
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="${H - 8}" font-size="12" text-anchor="middle">${title} (seconds)</text>`,
    `<text x="14" y="${H / 2}" font-size="12" transform="rotate(-90 14 ${H / 2})" text-anchor="middle">${yLabel}</text>`,
    ...yt,
    ...xt,
    `<line x1="${m.l}" y1="${H - m.b}" x2="${W - m.r}" y2="${H - m.b}" stroke="black"/><line x1="${m.l}" y1="${m.t}" x2="${m.l}" y2="${H - m.b}" stroke="black"/>`,
    ...lines,
    ...legend,
    '</svg>',
  ].join('\n');
}
