/**
 * The chart's SLO alerts under Prometheus' own rule tester: the PrometheusRule
 * rendered by helm, its groups checked by `promtool check rules` and run
 * through test/promtool/slo-alerts.yaml with `promtool test rules`, where
 * alerts must fire at the right series and stay silent elsewhere. Two broken
 * copies of the rules (thresholds too high; no short windows) must fail
 * those tests, so they are known to catch what they are for.
 * promtool comes from $PROMTOOL, or scripts/build-promtool.sh builds it from
 * its Go module once; helm likewise.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments, stringify } from 'yaml';

const script = (name: string) => fileURLToPath(new URL(`../../scripts/${name}`, import.meta.url));
const built = (name: string) => execFileSync('bash', [script(name)], { encoding: 'utf8' }).trim().split('\n').at(-1)!;
const CHART = fileURLToPath(new URL('../../charts/breakwater', import.meta.url));
const RULE_TESTS = fileURLToPath(new URL('../promtool/slo-alerts.yaml', import.meta.url));

interface RuleGroup {
  name: string;
  rules: { alert?: string; record?: string; expr: string }[];
}

describe('the chart\'s SLO alerts under promtool', () => {
  let promtool: string;
  let groups: RuleGroup[];

  before(() => {
    promtool = process.env.PROMTOOL ?? built('build-promtool.sh');
    const helm = process.env.HELM ?? built('build-helm.sh');
    const rendered = execFileSync(helm, ['template', 'bw', CHART, '--kube-version', '1.33.0', '--set', 'metrics.prometheusRule.enabled=true'], { encoding: 'utf8' });
    const rule = parseAllDocuments(rendered).map((d) => d.toJS()).find((d) => d?.kind === 'PrometheusRule');
    groups = rule.spec.groups;
  });

  /** Runs promtool on `rules` with the rule tests beside them. */
  function promtoolOn(rules: RuleGroup[], ...args: string[]) {
    const dir = mkdtempSync(join(tmpdir(), 'breakwater-promtool-'));
    writeFileSync(join(dir, 'rules.yaml'), stringify({ groups: rules }));
    copyFileSync(RULE_TESTS, join(dir, 'slo-alerts.yaml'));
    return spawnSync(promtool, args, { cwd: dir, encoding: 'utf8', timeout: 60_000 });
  }

  it('are valid rules, and pass their tests: they fire at the right series and stay silent elsewhere', () => {
    const check = promtoolOn(groups, 'check', 'rules', 'rules.yaml');
    assert.equal(check.status, 0, check.stdout + check.stderr);
    const slo = groups.find((g) => g.name === 'breakwater-slo');
    assert.deepEqual(slo?.rules.filter((r) => r.alert).map((r) => r.alert), ['BreakwaterSLOBurnFast', 'BreakwaterSLOBurnSlow']);
    const run = promtoolOn(groups, 'test', 'rules', 'slo-alerts.yaml');
    assert.equal(run.status, 0, run.stdout + run.stderr);
    assert.match(run.stdout, /SUCCESS/);
  });

  /** The rules with each alert's expression rewritten. */
  const mutated = (rewrite: (expr: string) => string) => groups.map((g) => ({ ...g, rules: g.rules.map((r) => (r.alert?.startsWith('BreakwaterSLO') ? { ...r, expr: rewrite(r.expr) } : r)) }));

  it('catch alerts that would not fire: thresholds ten times too high fail the firing tests', () => {
    const run = promtoolOn(mutated((expr) => expr.replace(/(\d+(\.\d+)?) \* \(1 - /g, (_, n: string) => `${Number(n) * 10} * (1 - `)), 'test', 'rules', 'slo-alerts.yaml');
    assert.notEqual(run.status, 0);
    assert.match(run.stdout + run.stderr, /an outage .* pages and tickets[\s\S]*FAILED|FAILED[\s\S]*an outage/);
  });

  it('catch alerts that would not stop: without the short windows, the test of an outage that ended fails', () => {
    const run = promtoolOn(mutated((expr) => expr.replace(/ and breakwater:sli_error_ratio:rate(5m|30m|2h|6h) > [^)]*\)\)/g, ')')), 'test', 'rules', 'slo-alerts.yaml');
    assert.notEqual(run.status, 0);
    assert.match(run.stdout + run.stderr, /ended 40 minutes ago/);
  });
});
