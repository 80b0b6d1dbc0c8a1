/** The watched policy file: an edit takes effect promptly, even while other files in its directory keep changing. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { watchPolicyFile, type LoadResult } from '../../sidecar/config/policy-file.js';

describe('policy file watcher', () => {
  it('applies an edit within a second while a neighbouring file is written every 20 ms', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'breakwater-policy-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'policy.yaml');
    writeFileSync(file, 'upstreams: [{name: a, url: "http://127.0.0.1:9"}]\n');
    const results: LoadResult[] = [];
    const watcher = watchPolicyFile(file, (r) => results.push(r));
    t.after(() => watcher.close());
    let n = 0;
    const busy = setInterval(() => writeFileSync(join(dir, 'busy.log'), String(n++)), 20);
    t.after(() => clearInterval(busy));
    await new Promise((r) => setTimeout(r, 100));
    writeFileSync(file, 'upstreams: [{name: b, url: "http://127.0.0.1:9"}]\n');
    const started = performance.now();
    while (results.length === 0 && performance.now() - started < 1000) await new Promise((r) => setTimeout(r, 10));
    clearInterval(busy);
    assert.equal(results.length, 1, 'the edit was seen within a second');
    assert.ok(results[0]!.ok && results[0]!.config.upstreams.has('b'));
  });
});
