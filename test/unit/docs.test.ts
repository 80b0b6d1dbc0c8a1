/**
 * The README is the front door and docs/ holds the rest: the README stays
 * within 16 KiB; every link between them reaches a file (and a heading or
 * anchor in it); every file path they name in code exists; every policy they
 * show is valid; the README's cluster commands are ones the e2e test can run
 * as written (test/e2e/cluster.e2e.ts); docs/performance.md keeps the section
 * `npm run bench` rewrites.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { formatProblems, validatePolicy } from '../../api/index.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');
const PAGES = ['README.md', ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
const slug = (heading: string) => heading.trim().toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-');

function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  for (const m of markdown.matchAll(/^#{1,6}\s+(.+)$/gm)) anchors.add(slug(m[1]!));
  for (const m of markdown.matchAll(/<a id="([^"]+)"><\/a>/g)) anchors.add(m[1]!);
  return anchors;
}

/** The text outside fenced code blocks. */
const prose = (markdown: string) => markdown.replace(/^```[\s\S]*?^```/gm, '');

describe('the documentation', () => {
  it('has a README of at most 16 KiB, and the pages the README links to', () => {
    const size = Buffer.byteLength(read('README.md'));
    assert.ok(size <= 16 * 1024, `README.md is ${size} bytes: move what a first reader does not need into docs/`);
    for (const page of ['policy-reference', 'requests', 'streams', 'operations', 'limits-and-safety', 'architecture', 'performance']) {
      assert.ok(PAGES.includes(`docs/${page}.md`), `docs/${page}.md`);
      assert.ok(read('README.md').includes(`](docs/${page}.md`), `the README links to docs/${page}.md`);
    }
  });

  it('links only to files and anchors that exist', () => {
    const broken: string[] = [];
    for (const page of PAGES) {
      for (const m of prose(read(page)).matchAll(/\]\(([^)\s]+)\)/g)) {
        const target = m[1]!;
        if (/^[a-z]+:/.test(target)) continue;
        const [file, anchor] = target.split('#') as [string, string | undefined];
        const path = file === '' ? page : normalize(join(dirname(page), file));
        if (!existsSync(join(ROOT, path))) broken.push(`${page}: ${target} (no ${path})`);
        else if (anchor !== undefined && path.endsWith('.md') && !anchorsOf(read(path)).has(anchor)) broken.push(`${page}: ${target} (no #${anchor} in ${path})`);
      }
    }
    assert.deepEqual(broken, []);
  });

  it('names only files and folders of the repository that exist', () => {
    const missing: string[] = [];
    const top = /^(?:api|sidecar|controller|lib|charts|crds|test|bench|scripts|examples|docs)\/|^(?:cli\.ts|Dockerfile|package\.json)$/;
    for (const page of PAGES) {
      for (const m of prose(read(page)).matchAll(/`([^`\s]+)`/g)) {
        const path = m[1]!.replace(/[.,:;]$/, '');
        if (!top.test(path) || /[<>*{}[\]]/.test(path)) continue;
        if (!existsSync(join(ROOT, path))) missing.push(`${page}: ${path}`);
      }
    }
    assert.deepEqual(missing, []);
  });

  it('shows only valid policies', () => {
    let shown = 0;
    for (const page of PAGES) {
      for (const m of read(page).matchAll(/^```yaml\n([\s\S]*?)^```/gm)) {
        const doc = parse(m[1]!) as Record<string, unknown> | null;
        if (!doc || !('upstreams' in doc || 'spec' in doc)) continue;
        shown++;
        const verdict = validatePolicy(doc);
        assert.ok(verdict.ok, `${page}:\n${m[1]}\n${verdict.ok ? '' : formatProblems(verdict.problems)}`);
      }
    }
    assert.ok(shown >= 3, `${shown} policies shown`);
  });

  it("keeps the README's cluster commands runnable as the e2e test runs them", () => {
    // As test/e2e/cluster.e2e.ts reads them: the first ```sh block after the heading, helm lines aside.
    const readme = read('README.md');
    const at = readme.indexOf('\n## Install on a cluster\n');
    assert.ok(at >= 0, 'the README has "## Install on a cluster"');
    const section = readme.slice(at + 1);
    const open = section.indexOf('```sh\n');
    const block = section.slice(open + 6, section.indexOf('\n```', open));
    assert.ok(open >= 0 && open < section.indexOf('\n## ', 1), 'the section has a sh block');
    const commands = block.replace(/\\\n\s*/g, ' ').split('\n').map((l) => l.replace(/\s+#.*$/, '').trim()).filter((l) => l !== '' && !l.startsWith('helm '));
    assert.ok(commands.length >= 4, JSON.stringify(commands));
    assert.ok(block.split('\n').some((l) => l.startsWith('helm install ')), 'the block installs the chart with helm');
    for (const command of commands) {
      const [tool, ...args] = command.split(/\s+/);
      assert.equal(tool, 'kubectl', command);
      for (const arg of args.filter((a) => a.startsWith('examples/'))) assert.ok(existsSync(join(ROOT, arg)), arg);
    }
    assert.ok(commands.some((c) => /^kubectl apply -n shop -f examples\/policies\/chat-policy\.yaml$/.test(c)), 'the e2e test waits for the policy chat in shop');
  });

  for (const [path, name, first] of [
    ['docs/performance.md', 'bench:results', /^Benchmark run /m],
    ['README.md', 'bench:summary', /^The latest run \(/m],
  ] as const) {
    it(`keeps the section that npm run bench rewrites in ${path}`, () => {
      const doc = read(path);
      const [start, end] = [`<!-- ${name} -->`, `<!-- /${name} -->`];
      assert.equal(doc.split(start).length, 2, `one ${start}`);
      assert.equal(doc.split(end).length, 2, `one ${end}`);
      assert.ok(doc.indexOf(start) < doc.indexOf(end));
      const results = doc.slice(doc.indexOf(start) + start.length, doc.indexOf(end));
      assert.match(results, first, 'the section holds a run of bench/run.ts');
    });
  }
});
