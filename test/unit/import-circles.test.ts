/**
 * The product's modules import one another without a circle, type imports
 * included: a module uses what is below it and is used by what is above it,
 * so each can be read, tested and moved on its own, and a module's top-level
 * code never runs against a half-loaded import. dpdm reads every file of
 * api/, sidecar/, controller/, lib/, scripts/, cli/ and cli.ts with
 * TypeScript's parser; an imported type counts as an import, and so does a
 * dynamic import(). A circle is printed as the files it goes through.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseCircular, parseDependencyTree, type DependencyTree } from 'dpdm';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SOURCES = ['api/**/*.ts', 'sidecar/**/*.ts', 'controller/**/*.ts', 'lib/**/*.ts', 'scripts/**/*.ts', 'cli/**/*.ts', 'cli.ts'];

/**
 * The dependency tree of `entries` (globs in `dir`), every import kept: static, dynamic and type-only
 * (transform: false reads the TypeScript as written). Specifiers resolve as the nearest tsconfig.json
 * says, so `./x.js` leads to x.ts.
 */
const treeOf = (entries: string[], dir: string) => parseDependencyTree(entries, { cwd: dir, context: dir, transform: false, skipDynamicImports: false });

/** The relative imports the tree could not follow to a file: a circle could hide behind one. */
const unresolved = (tree: DependencyTree) =>
  Object.entries(tree).flatMap(([file, deps]) => (deps ?? []).filter((d) => d.request.startsWith('.') && d.id === null).map((d) => `${file} imports ${d.request}`));

const said = (circles: string[][]) => circles.map((c) => `  ${[...c, c[0]].join(' → ')}`).join('\n');

describe('imports', () => {
  it('form no circle in the product\'s code, type imports included', async () => {
    const tree = await treeOf(SOURCES, ROOT);
    assert.ok(Object.keys(tree).length > 150, `dpdm read ${Object.keys(tree).length} files`);
    assert.deepEqual(unresolved(tree), [], 'every relative import leads to a file');
    const ignored = Object.keys(tree).filter((file) => file.endsWith('.ts') && !file.includes('node_modules') && readFileSync(join(ROOT, file), 'utf8').includes('@dpdm-ignore'));
    assert.deepEqual(ignored, [], 'no import is hidden from the check with @dpdm-ignore');
    const circles = parseCircular(tree);
    assert.equal(circles.length, 0, `${circles.length} import circle${circles.length === 1 ? '' : 's'}:\n${said(circles)}`);
  });

  it('are followed through `.js` specifiers to `.ts` files, and a circle of type imports is found', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'import-circles-'));
    try {
      writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext' } }));
      writeFileSync(join(dir, 'a.ts'), "import type { B } from './b.js';\nexport interface A { b?: B }\n");
      writeFileSync(join(dir, 'b.ts'), "import { c } from './c.js';\nexport interface B { c: typeof c }\n");
      writeFileSync(join(dir, 'c.ts'), "import type { A } from './a.js';\nexport const c: A | undefined = undefined;\n");
      const tree = await treeOf(['*.ts'], dir);
      assert.deepEqual(unresolved(tree), []);
      assert.deepEqual(parseCircular(tree).map((c) => [...c].sort()), [['a.ts', 'b.ts', 'c.ts']]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
