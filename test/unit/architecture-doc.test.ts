/**
 * docs/architecture.md lists the request pipeline's layers, outermost first;
 * sidecar/proxy/pipeline.ts builds it. The two must not drift: the layer names
 * are read from the code (the identifiers given to `stack([...])`, and the
 * innermost handler, with the tier's stack spliced in where the chain's stack
 * takes it) and from the page's numbered list, and must be the same, in the
 * same order. The map at the top of pipeline.ts is held to the code the same way.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import ts from 'typescript';

const ROOT = new URL('../../', import.meta.url);
const read = (path: string) => readFileSync(new URL(path, ROOT), 'utf8');

/** The name of a layer expression: `credential` or `retry({ ... })` → its identifier. */
function layerName(node: ts.Expression, source: ts.SourceFile): string {
  if (ts.isIdentifier(node)) return node.text;
  if (ts.isCallExpression(node)) return layerName(node.expression, source);
  throw new Error(`pipeline.ts: a layer that is neither a name nor a call of one: ${node.getText(source)}`);
}

/** The layers of the pipeline that pipeline.ts builds, outermost first, the innermost handler last. */
function pipelineLayers(code: string): string[] {
  const source = ts.createSourceFile('pipeline.ts', code, ts.ScriptTarget.Latest, true);
  interface Stack { layers: string[]; inner: ts.Expression }
  const named = new Map<string, Stack>();
  const returned: Stack[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isCallExpression(node) && ts.isIdentifier(node.expression) && node.expression.text === 'stack') {
      const [list, inner] = node.arguments;
      assert.ok(list && ts.isArrayLiteralExpression(list) && inner, `pipeline.ts: stack() takes a list of layers and the handler inside them: ${node.getText(source)}`);
      const stack = { layers: list.elements.map((e) => layerName(e, source)), inner };
      if (ts.isVariableDeclaration(node.parent) && ts.isIdentifier(node.parent.name)) named.set(node.parent.name.text, stack);
      else if (ts.isReturnStatement(node.parent)) returned.push(stack);
      else throw new Error(`pipeline.ts: a stack() that is neither named nor returned: ${node.getText(source)}`);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  assert.equal(returned.length, 1, 'pipeline.ts returns one stack()');
  const expand = (stack: Stack, seen: string[]): string[] => {
    const inner = ts.isIdentifier(stack.inner) ? named.get(stack.inner.text) : undefined;
    if (!inner) return [...stack.layers, layerName(stack.inner, source)];
    assert.ok(!seen.includes((stack.inner as ts.Identifier).text), 'pipeline.ts: a stack inside itself');
    return [...stack.layers, ...expand(inner, [...seen, (stack.inner as ts.Identifier).text])];
  };
  return expand(returned[0]!, []);
}

/** The numbered list of docs/architecture.md's "The request pipeline": each item's name, number and file. */
function documentedLayers(markdown: string): { name: string; number: number; file?: string }[] {
  const start = markdown.indexOf('\n## The request pipeline\n');
  assert.ok(start >= 0, 'docs/architecture.md has a section "## The request pipeline"');
  const end = markdown.indexOf('\n## ', start + 1);
  const section = markdown.slice(start, end < 0 ? undefined : end);
  const items: { name: string; number: number; file?: string }[] = [];
  for (const line of section.split('\n')) {
    const m = /^(\d+)\.\s+`([^`]+)`(?:\s+\(`([^`]+)`\))?/.exec(line);
    if (m) items.push({ number: Number(m[1]), name: m[2]!, file: m[3] });
  }
  return items;
}

/** The layers named in the map at the top of pipeline.ts ("answer cache" → answerCache). */
function commentLayers(code: string): string[] {
  const comment = /^\/\*\*([\s\S]*?)\*\//.exec(code)?.[1] ?? '';
  return comment
    .split('\n')
    .map((line) => /^ \* {3}([a-z]+(?: [a-z]+)*) {2,}\S/.exec(line)?.[1])
    .filter((name): name is string => name !== undefined)
    .map((name) => name.split(' ').map((w, i) => (i === 0 ? w : w[0]!.toUpperCase() + w.slice(1))).join(''));
}

/** What differs between the pipeline's layers and a list of them, said plainly; undefined when they agree. */
function difference(code: string[], listed: string[], where: string): string | undefined {
  if (code.length === listed.length && code.every((name, i) => name === listed[i])) return undefined;
  const missing = code.filter((n) => !listed.includes(n));
  const extra = listed.filter((n) => !code.includes(n));
  const first = code.findIndex((n, i) => n !== listed[i]);
  return [
    `${where} does not list the pipeline's layers in pipeline.ts's order.`,
    `  pipeline.ts: ${code.join(' → ')}`,
    `  ${where}: ${listed.join(' → ')}`,
    missing.length > 0 ? `  missing from ${where}: ${missing.join(', ')}` : '',
    extra.length > 0 ? `  not in pipeline.ts: ${extra.join(', ')}` : '',
    first >= 0 ? `  first difference at position ${first + 1}: ${code[first]} against ${listed[first] ?? 'nothing'}` : '',
  ].filter(Boolean).join('\n');
}

const pipeline = read('sidecar/proxy/pipeline.ts');
const architecture = read('docs/architecture.md');

describe('docs/architecture.md and the pipeline', () => {
  it('reads the layers from the code: both stacks, the tier spliced in, the innermost handler last', () => {
    const layers = pipelineLayers(pipeline);
    assert.ok(layers.length >= 10, layers.join(', '));
    assert.equal(layers[layers.length - 1], 'attempt');
    assert.ok(layers.indexOf('fallback') < layers.indexOf('retry') && layers.indexOf('retry') < layers.indexOf('breaker'), layers.join(', '));
  });

  it('lists the same layers as pipeline.ts, in the same order', () => {
    const message = difference(pipelineLayers(pipeline), documentedLayers(architecture).map((l) => l.name), 'docs/architecture.md');
    assert.equal(message, undefined, message);
  });

  it('numbers its list 1, 2, 3… and names each layer\'s file, which exports it', () => {
    const items = documentedLayers(architecture);
    assert.deepEqual(items.map((l) => l.number), items.map((_, i) => i + 1));
    for (const { name, file } of items) {
      assert.ok(file, `${name}: its file, as (\`layers/<file>.ts\`)`);
      const path = new URL(`sidecar/proxy/${file}`, ROOT);
      assert.ok(existsSync(path), `${name}: sidecar/proxy/${file} does not exist`);
      assert.match(readFileSync(path, 'utf8'), new RegExp(`export (?:async )?(?:function|const) ${name}\\b`), `sidecar/proxy/${file} exports ${name}`);
    }
  });

  it('fails when a layer is added to pipeline.ts and not to the page, or the page reorders or drops one', () => {
    const listed = documentedLayers(architecture).map((l) => l.name);
    // A name no real layer will take, put first in the first stack whatever that stack starts with.
    const added = pipeline.replace(/stack\(\s*\[/, 'stack([\n      notARealLayerSelfCheck(d.clock),');
    assert.notEqual(added, pipeline, 'the test could add a layer to a copy of pipeline.ts');
    assert.match(difference(pipelineLayers(added), listed, 'docs/architecture.md') ?? '', /missing from docs\/architecture\.md: (?:.*, )?notARealLayerSelfCheck\b/);
    const swapped = [...listed];
    [swapped[1], swapped[2]] = [swapped[2]!, swapped[1]!];
    assert.match(difference(pipelineLayers(pipeline), swapped, 'docs/architecture.md') ?? '', /first difference at position 2/);
    assert.match(difference(pipelineLayers(pipeline), listed.slice(0, -1), 'docs/architecture.md') ?? '', /missing from docs\/architecture\.md: (?:.*, )?attempt\b/);
  });

  it('agrees with the map at the top of pipeline.ts', () => {
    const message = difference(pipelineLayers(pipeline), commentLayers(pipeline), "pipeline.ts's top comment");
    assert.equal(message, undefined, message);
  });
});
