/**
 * `breakwater check-policy FILE [--kubeconfig F [--namespace NS]]`: validates
 * a policy file as the controller and the sidecar would, and says in plain
 * lines what it does (budgets, SLOs, guards, where credentials come from).
 * With a kubeconfig, it also reads the Secret keys the policy names, as the
 * controller would. An invalid policy, or a Secret key that would give no
 * credential, exits 1.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parse } from 'yaml';
import { formatProblems, validatePolicy, type PolicySpec } from '../api/index.js';
import { printable } from '../lib/index.js';
import { UsageError } from './usage.js';

export async function checkPolicy(args: string[]): Promise<void> {
  const { loadPolicyFile } = await import('../sidecar/config/policy-file.js');
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { kubeconfig: { type: 'string' }, namespace: { type: 'string', short: 'n', default: 'default' } } });
  const file = positionals[0];
  if (!file || positionals.length > 1) throw new UsageError('check-policy takes one FILE');
  // Every line is printed with its control characters escaped: nothing a policy holds (a name, a key, the
  // parser's quote of the file) can colour the terminal, move its cursor or add a line of its own.
  const say = (line: string) => process.stdout.write(`${printable(line)}\n`);
  const refuse = (lines: string[]): never => {
    process.stderr.write(`${lines.map(printable).join('\n')}\n`);
    return process.exit(1);
  };
  let verdict;
  try {
    verdict = validatePolicy(parse(readFileSync(file, 'utf8')));
  } catch (err) {
    return refuse(`${file}: ${(err as Error).message}`.split('\n'));
  }
  if (!verdict.ok) {
    return refuse([`${file}: invalid policy (${verdict.problems.length} problem${verdict.problems.length > 1 ? 's' : ''}):`, ...verdict.problems.map((p) => formatProblems([p]))]);
  }
  const loaded = loadPolicyFile(file);
  if (!loaded.ok) return refuse(loaded.error.split('\n'));
  const names = verdict.spec.upstreams.map((u) => u.name).join(', ');
  say(`${file}: valid (upstreams: ${names})`);
  const budgetLine = (b: typeof verdict.spec.budget, whose: string, routes: string[]) => {
    const limits = [b.tokens && `${b.tokens} tokens`, Number(b.cost) > 0 && `${b.cost} in cost`].filter(Boolean);
    if (limits.length === 0) return;
    const over = routes.length > 0 ? `goes to ${routes.join(', then ')}` : `gets 429 budget_exhausted until the ${b.window} rolls`;
    say(`  ${whose}: budget of ${limits.join(' and ')} per ${b.window} (per pod); a request over it ${over}`);
  };
  budgetLine(verdict.spec.budget, 'all upstreams together', []);
  const { slo } = verdict.spec;
  const objectives = [
    Number(slo.availability.objective) > 0 && `availability ${slo.availability.objective}%`,
    Number(slo.timeToFirstToken.objective) > 0 && `first token within ${slo.timeToFirstToken.threshold} for ${slo.timeToFirstToken.objective}% of streamed answers`,
  ].filter(Boolean);
  if (objectives.length > 0) say(`  SLOs: ${objectives.join('; ')}, over ${slo.window} (status condition SLOMet)`);
  for (const u of verdict.spec.upstreams) {
    const routes = u.fallback.filter((f) => !f.when || f.when.includes('budget-exhausted')).map((f) => f.upstream ?? (f.cache ? 'the cache' : 'the static answer'));
    budgetLine(u.budget, u.name, routes);
    const g = u.guards;
    const on = [g.maxInputBytes && `at most ${g.maxInputBytes} body bytes`, g.maxInputTokens && `at most ${g.maxInputTokens} input tokens (estimated)`, g.deny.length && `deny ${g.deny.map((d) => d.name).join(', ')}`].filter(Boolean);
    if (on.length > 0) say(`  ${u.name}: input guards: ${on.join('; ')}; a request that trips one gets 400 guardrail_blocked and never leaves`);
    const ref = u.auth?.secretRef;
    if (ref && !values.kubeconfig) say(`  ${u.name}: credential from Secret ${ref.name}, key ${ref.key}, which the controller reads in the policy's namespace (not checked here; until it exists, ${u.name} answers 503 and its fallback tiers serve)`);
  }
  const redis = verdict.spec.cache.redis;
  if (redis?.secretRef && !values.kubeconfig) {
    const { name, key } = redis.secretRef;
    say(
      redis.url
        ? `  shared cache: Redis password from Secret ${name}, key ${key}, which the controller reads in the policy's namespace (not checked here; until it exists, the sidecars connect to Redis without a password, and each answers from its own cache while Redis refuses them)`
        : `  shared cache: off (cache.redis.url is empty), so Secret ${name}, key ${key} (cache.redis.secretRef) is not used`,
    );
  }
  if (values.kubeconfig) {
    const unusable = await checkSecrets(verdict.spec, values.kubeconfig, values.namespace, say);
    if (unusable > 0) return refuse([`${file}: ${unusable} Secret key${unusable > 1 ? 's' : ''} in namespace ${values.namespace} would give no credential: the policy would not be Accepted`]);
  }
}

/**
 * With a kubeconfig, check-policy reads each Secret key the policy names in `namespace`, as the controller
 * would (labelled for Breakwater, the key there, its value a usable credential), and says what it found,
 * never a value. Returns how many give no credential.
 */
async function checkSecrets(spec: PolicySpec, kubeconfig: string, namespace: string, say: (line: string) => void): Promise<number> {
  const { CoreV1Api, KubeConfig } = await import('@kubernetes/client-node');
  const { credentialIn, secretReader, secretRefsOf } = await import('../controller/secret-values.js');
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfig);
  const read = secretReader(kc.makeApiClient(CoreV1Api));
  let unusable = 0;
  for (const ref of secretRefsOf(spec)) {
    const where = `${ref.usedBy}: Secret ${ref.name}, key ${ref.key}`;
    let found;
    try {
      found = credentialIn(await read(namespace, ref.name), ref.key);
    } catch (err) {
      unusable++;
      say(`  ${where}: could not be read in namespace ${namespace}: ${String((err as Error).message).slice(0, 200)}`);
      continue;
    }
    if (found.problem) unusable++;
    say(`  ${where} ${found.problem ? `${found.problem.says} (${found.problem.reason})` : 'holds a usable credential'}, in namespace ${namespace}`);
  }
  return unusable;
}
