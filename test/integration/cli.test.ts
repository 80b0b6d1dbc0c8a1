/** The `breakwater` command as users run it: check-policy, start-up, hot reload, graceful drain. */
import assert from 'node:assert/strict';
import { readdirSync, writeFileSync, renameSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { chat, post, startMock } from '../support/harness.js';
import { cliResult, spawnSidecar, writePolicy } from '../support/sidecar-process.js';

const example = (name: string) => fileURLToPath(new URL(`../../examples/policies/${name}`, import.meta.url));
const status = async (adminUrl: string) => (await (await fetch(`${adminUrl}/status`)).json()) as any;

async function until(check: () => Promise<boolean> | boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('breakwater check-policy', () => {
  it('accepts the example policies', async () => {
    const files = readdirSync(new URL('../../examples/policies/', import.meta.url)).filter((f) => f.endsWith('.yaml'));
    assert.ok(['minimal.yaml', 'chat-policy.yaml', 'secret-ref.yaml', 'fallback.yaml', 'faults.yaml'].every((f) => files.includes(f)), files.join(', '));
    for (const file of files) {
      const r = await cliResult(['check-policy', example(file)]);
      assert.equal(r.code, 0, `${file}: ${r.stderr}`);
      assert.match(r.stdout, /valid \(upstreams: /, file);
    }
    const secrets = await cliResult(['check-policy', example('secret-ref.yaml')]);
    assert.match(secrets.stdout, /claude: credential from Secret llm-keys, key anthropic/);
    const r = await cliResult(['check-policy', example('chat-policy.yaml')]);
    assert.match(r.stdout, /^ {2}claude: input guards: at most 100000 input tokens \(estimated\); deny jailbreak; a request that trips one gets 400 guardrail_blocked/m, 'the guards that are on are explained');
    assert.doesNotMatch(r.stdout, /vllm: input guards/);
    assert.match(r.stdout, /^ {2}claude: budget of 5 in cost per hour \(per pod\); a request over it gets 429 budget_exhausted until the hour rolls$/m, 'the budget is explained');
    assert.doesNotMatch(r.stdout, /all upstreams together/, 'no policy budget, none explained');
    assert.match(r.stdout, /^ {2}SLOs: availability 99\.9%; first token within 2s for 95% of streamed answers, over 1h \(status condition SLOMet\)$/m);
  });

  it('checks a cluster policy that names Secrets without needing them, and says so (issue 26)', async () => {
    const file = writePolicy('upstreams: [{name: openai, url: "https://api.openai.com", auth: {secretRef: {name: openai-key, key: apiKey}}}]\n');
    const r = await cliResult(['check-policy', file]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /valid \(upstreams: openai\)/);
    assert.match(r.stdout, /openai: credential from Secret openai-key, key apiKey, which the controller reads in the policy's namespace \(not checked here/);
  });

  it('reports the Redis password\'s Secret as it does an upstream\'s, and one the policy does not use (red team, issue 26)', async () => {
    const shared = await cliResult(['check-policy', writePolicy('upstreams: [{name: openai, url: "https://api.openai.com"}]\ncache: {redis: {url: "redis://redis:6379", secretRef: {name: redis-auth, key: password}}}\n')]);
    assert.equal(shared.code, 0, shared.stderr);
    assert.match(shared.stdout, /^ {2}shared cache: Redis password from Secret redis-auth, key password, which the controller reads in the policy's namespace \(not checked here; /m);
    const off = await cliResult(['check-policy', writePolicy('upstreams: [{name: openai, url: "https://api.openai.com"}]\ncache: {redis: {secretRef: {name: redis-auth, key: password}}}\n')]);
    assert.equal(off.code, 0, off.stderr);
    assert.match(off.stdout, /^ {2}shared cache: off \(cache\.redis\.url is empty\), so Secret redis-auth, key password \(cache\.redis\.secretRef\) is not used$/m);
  });

  it('prints what a policy holds with its control characters escaped, one problem a line (red team, issue 26)', async () => {
    // An ANSI escape and a line break in Secret references, a CSI (U+009B) in an unknown field's name.
    const hostile = await cliResult(['check-policy', writePolicy('upstreams: [{name: openai, url: "http://a", "x\\u009b2J": 1, auth: {secretRef: {name: "x\\e[31mRED", key: "k\\nFAKE: injected line"}}}]\n')]);
    assert.equal(hostile.code, 1, hostile.stdout);
    assert.doesNotMatch(hostile.stderr + hostile.stdout, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/, 'no control character but the line ends');
    const lines = hostile.stderr.trimEnd().split('\n');
    assert.match(lines[0]!, /invalid policy \(3 problems\):$/);
    assert.equal(lines.length, 4, hostile.stderr);
    assert.match(hostile.stderr, /^spec\.upstreams\[0\]\.x\\x9b2J: unknown field$/m);
    assert.match(hostile.stderr, /^spec\.upstreams\[0\]\.auth\.secretRef\.name: "x\\u001b\[31mRED" is not a Secret name/m);
    assert.match(hostile.stderr, /^spec\.upstreams\[0\]\.auth\.secretRef\.key: "k\\nFAKE: injected line" is not a key of a Secret/m);
    // The parser's quote of a file it cannot read, too.
    const unparsable = await cliResult(['check-policy', writePolicy('upstreams:\n  - name: a\n    url: http://a\n   bad: "\u001b[2J"\n')]);
    assert.equal(unparsable.code, 1);
    assert.doesNotMatch(unparsable.stderr, /\u001b/);
    assert.match(unparsable.stderr, /bad: "\\x1b\[2J"/);
  });

  it('explains every error by field path and exits 1', async () => {
    const r = await cliResult(['check-policy', example('invalid/bad-fields.yaml')]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /invalid policy \(3 problems\)/);
    assert.match(r.stderr, /spec\.upstreams\[0\]\.name: must be a DNS label/);
    assert.match(r.stderr, /spec\.upstreams\[0\]\.url: /);
    assert.match(r.stderr, /spec\.upstreams\[0\]\.retry\.attempts: must be >= 1/);
  });

  it('exits 2 with usage on a wrong command line', async () => {
    const r = await cliResult(['sidecar']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /exactly one of --policy FILE, --controller URL or --demo/);
  });
});

describe('breakwater sidecar', () => {
  it('refuses to start on an invalid policy, naming the field', async () => {
    const file = writePolicy('upstreams: [{name: a, url: "http://a", bulkhead: {maxConcurrent: 0}}]\n');
    const r = await cliResult(['sidecar', '--policy', file, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /spec\.upstreams\[0\]\.bulkhead\.maxConcurrent: must be >= 1/);
  });

  it('applies a valid edit of the policy file at once and keeps the last good config on an invalid one', async (t) => {
    const mock = await startMock(t);
    const sidecar = await spawnSidecar(t, `upstreams: [{name: first, url: "${mock.url}"}]\n`);
    const before = await status(sidecar.adminUrl);
    assert.equal((await post(`${sidecar.dataUrl}/first/v1/chat/completions`, chat())).status, 200);

    // Editors and ConfigMap updates replace the file; do the same.
    const replace = (text: string) => {
      writeFileSync(`${sidecar.policyFile}.tmp`, text);
      renameSync(`${sidecar.policyFile}.tmp`, sidecar.policyFile);
    };
    replace(`upstreams: [{name: second, url: "${mock.url}"}]\n`);
    await until(async () => (await status(sidecar.adminUrl)).config.hash !== before.config.hash, 'the new config');
    assert.equal((await post(`${sidecar.dataUrl}/second/v1/chat/completions`, chat())).status, 200);
    assert.equal((await post(`${sidecar.dataUrl}/first/v1/chat/completions`, chat())).status, 404);
    const good = await status(sidecar.adminUrl);

    replace(`upstreams: [{name: third, url: "ftp://nope"}]\n`);
    await until(() => sidecar.logs.some((l) => l.msg?.toString().startsWith('policy file change rejected')), 'the rejection');
    const rejection = sidecar.logs.find((l) => l.msg?.toString().startsWith('policy file change rejected'))!;
    assert.match(String(rejection.error), /spec\.upstreams\[0\]\.url/);
    assert.equal((await status(sidecar.adminUrl)).config.hash, good.config.hash);
    assert.equal((await post(`${sidecar.dataUrl}/second/v1/chat/completions`, chat())).status, 200, 'the last good config stays in force');
  });

  it('drains and exits 0 on POST /quitquitquit from loopback', async (t) => {
    const mock = await startMock(t);
    const sidecar = await spawnSidecar(t, `upstreams: [{name: p, url: "${mock.url}"}]\nshutdown: {drainTimeout: 5s}\n`);
    const r = await fetch(`${sidecar.adminUrl}/quitquitquit`, { method: 'POST' });
    assert.deepEqual(await r.json(), { draining: true });
    assert.equal(await sidecar.exited, 0);
  });

  it('on SIGTERM fails readiness, refuses new connections, finishes in-flight requests and streams, and exits 0', async (t) => {
    const mock = await startMock(t);
    const sidecar = await spawnSidecar(t, `upstreams: [{name: p, url: "${mock.url}"}]\nshutdown: {drainTimeout: 5s}\n`);
    assert.equal((await fetch(`${sidecar.adminUrl}/readyz`)).status, 200);
    mock.enqueue({ kind: 'ok', delayMs: 600 }, { kind: 'ok', chunks: 6, chunkDelayMs: 100 });
    const plain = post(`${sidecar.dataUrl}/p/v1/chat/completions`, chat());
    const stream = post(`${sidecar.dataUrl}/p/v1/chat/completions`, chat({ stream: true }));
    await until(() => mock.requests.length === 2, 'both requests upstream');
    const signalledAt = performance.now();
    sidecar.child.kill('SIGTERM');
    await until(async () => (await fetch(`${sidecar.adminUrl}/readyz`).then((r) => r.status, () => 0)) !== 200, 'readiness to fail');
    await assert.rejects(fetch(`${sidecar.dataUrl}/p/v1/chat/completions`, { method: 'POST', body: chat() }), 'new connections are refused');
    const [p, s] = await Promise.all([plain, stream]);
    assert.equal(p.status, 200);
    assert.equal(p.json().choices[0].message.content, 'Hello from the Breakwater mock upstream.');
    assert.equal(s.status, 200);
    assert.match(s.text, /data: \[DONE\]/);
    assert.equal(await sidecar.exited, 0);
    const drainMs = performance.now() - signalledAt;
    assert.ok(drainMs < 5000, `exited after ${drainMs} ms, past drainTimeout`);
    t.diagnostic(`drained and exited in ${drainMs.toFixed(0)} ms`);
  });
});
