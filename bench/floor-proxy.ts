/**
 * The platform's floor: a featureless Node reverse proxy. It buffers the
 * request body, forwards it with a keep-alive agent and pipes the answer
 * back, and does nothing else. bench/run.ts measures the sidecar against it.
 *   node bench/floor-proxy.ts <listen port> <upstream origin>
 */
import http from 'node:http';

const [port, origin] = process.argv.slice(2);
const upstream = new URL(origin!);
const agent = new http.Agent({ keepAlive: true, maxFreeSockets: 256 });

http
  .createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const headers = { ...req.headers, host: upstream.host, 'content-length': String(body.length) };
      delete headers.connection;
      const out = http.request({ hostname: upstream.hostname, port: upstream.port, path: req.url, method: req.method, headers, agent }, (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      });
      out.on('error', () => {
        if (!res.headersSent) res.writeHead(502);
        res.end();
      });
      res.on('close', () => {
        if (!res.writableFinished) out.destroy(); // the client went away mid-answer
      });
      out.end(body);
    });
  })
  .listen(Number(port), '127.0.0.1');
