#!/usr/bin/env node
/**
 * The `breakwater` command. Subcommands:
 *   sidecar --policy FILE | --demo  [--listen 127.0.0.1:15001] [--admin 0.0.0.0:15021]
 *   check-policy FILE
 *   controller --tls-cert FILE --tls-key FILE [--config-listen 0.0.0.0:15443] [--health-listen 0.0.0.0:15080] [--kubeconfig FILE] [--resync 30s] [--status-refresh 5m] [--secret-poll 5s] [--leader-election-namespace NS] [--lease-duration 15s] [--identity NAME]
 *              [--sidecar-image IMAGE --advertise-url URL --ca-file FILE [--webhook-listen 0.0.0.0:15444] [--webhook-client-ca FILE]]
 *              (serves the injection webhook at /mutate-pods on its own port; with --webhook-client-ca, only to callers whose client certificate it signed)
 *   mock-upstream [--listen 127.0.0.1:15099] [--fail-percent N] [--fingerprint-credentials]
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parse } from 'yaml';
import { formatProblems, parseDuration, validatePolicy } from './api/index.js';
import { createLogger } from './sidecar/log.js';
import { parseHostPort, printable, type HostPort } from './lib/index.js';

// Each subcommand imports what it needs when it runs: the sidecar must not pay for the controller's Kubernetes client.

const USAGE = `usage:
  breakwater sidecar --policy FILE [--listen 127.0.0.1:15001] [--admin 0.0.0.0:15021] [--state-file FILE]
  breakwater sidecar --controller URL[,URL...] --pod-name NAME [--token-file F] [--ca-file F] [--config-cache F] [--state-file F] [--listen ...] [--admin ...]
  breakwater sidecar --demo        (embedded policy and a built-in mock upstream)
  breakwater check-policy FILE
  breakwater controller --tls-cert FILE --tls-key FILE [--config-listen 0.0.0.0:15443] [--health-listen 0.0.0.0:15080] [--kubeconfig FILE] [--resync 30s] [--status-refresh 5m] [--secret-poll 5s] [--leader-election-namespace NS] [--lease-duration 15s] [--identity NAME]
             [--sidecar-image IMAGE --advertise-url URL --ca-file FILE [--webhook-listen 0.0.0.0:15444] [--webhook-client-ca FILE]]
             (and serve the injection webhook on its own port; with --webhook-client-ca, only to callers whose client certificate that CA signed)
  breakwater mock-upstream [--listen 127.0.0.1:15099] [--fail-percent N] [--fingerprint-credentials]`;

function hostPort(text: string, flag: string): HostPort {
  const at = parseHostPort(text);
  if (!at) throw new UsageError(`${flag} must be HOST:PORT, got "${text}"`);
  return at;
}

class UsageError extends Error {}

/** A duration flag in milliseconds: a duration (such as 30s or 500ms) of at least `min` ms, or a usage error. */
function durationFlag(text: string, flag: string, min = 1): number {
  let ms: number;
  try {
    ms = parseDuration(text);
  } catch {
    throw new UsageError(`${flag} must be a duration such as 30s or 500ms, got "${text.slice(0, 64)}"`);
  }
  if (ms < min) throw new UsageError(`${flag} must be ${min === 1 ? 'more than 0' : `at least ${min / 1000}s`}, got "${text}"`);
  return ms;
}

async function sidecar(args: string[]): Promise<void> {
  const { startSidecar } = await import('./sidecar/sidecar.js');
  const { loadPolicyFile, watchPolicyFile } = await import('./sidecar/config/policy-file.js');
  const { values } = parseArgs({
    args,
    options: {
      policy: { type: 'string' },
      demo: { type: 'boolean', default: false },
      controller: { type: 'string' },
      'pod-name': { type: 'string', default: process.env.POD_NAME },
      'token-file': { type: 'string', default: '/var/run/secrets/breakwater.dev/token' },
      'ca-file': { type: 'string' },
      'config-cache': { type: 'string' },
      'state-file': { type: 'string' },
      listen: { type: 'string', default: '127.0.0.1:15001' },
      admin: { type: 'string', default: '0.0.0.0:15021' },
    },
  });
  if ([values.policy, values.demo || undefined, values.controller].filter((v) => v !== undefined).length !== 1) {
    throw new UsageError('give exactly one of --policy FILE, --controller URL or --demo');
  }
  if (values.controller && !values['pod-name']) throw new UsageError('--controller needs --pod-name (or the POD_NAME environment variable)');
  const log = createLogger();
  let config;
  if (values.demo) {
    const { startDemoUpstream } = await import('./sidecar/demo.js');
    const demo = await startDemoUpstream();
    config = demo.config;
    log.info({ mockUpstream: demo.upstream.url }, 'demo: built-in mock upstream started (fails 20% of requests with 503)');
  } else if (values.policy) {
    const loaded = loadPolicyFile(values.policy);
    if (!loaded.ok) {
      process.stderr.write(`${loaded.error}\n`);
      process.exit(1);
    }
    config = loaded.config;
  }
  // Signals can arrive as soon as the ports are open: handle them from the start.
  let started: Awaited<ReturnType<typeof startSidecar>> | undefined;
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => (started ? void started.drain() : process.exit(0)));
  const sidecar = await startSidecar({
    config,
    listen: hostPort(values.listen, '--listen'),
    admin: hostPort(values.admin, '--admin'),
    log,
    onDrained: (clean) => log.flush(() => process.exit(clean ? 0 : 1)),
    stateFile: values['state-file'],
  });
  started = sidecar;
  if (values.controller) {
    const { followController } = await import('./sidecar/config/controller-source.js');
    const source = followController({
      urls: values.controller.split(','),
      pod: values['pod-name']!,
      tokenFile: values['token-file'],
      caFile: values['ca-file'],
      ca: process.env.BREAKWATER_CONTROLLER_CA,
      cacheFile: values['config-cache'],
      apply: (config) => sidecar.apply(config),
      breakers: () => sidecar.state.breakerCounts(),
      opened: () => sidecar.state.openedBreakers(),
      slo: () => sidecar.state.slo?.report(),
      log,
    });
    process.once('exit', () => source.stop());
  }
  if (values.policy) {
    watchPolicyFile(values.policy, (result) => {
      if (result.ok) sidecar.apply(result.config); // one that cannot be applied is logged and the last good one stays
      else log.error({ error: result.error }, 'policy file change rejected; the last good config stays in force');
    });
  }
  if (values.demo) {
    process.stdout.write(`\nTry:\n  curl -s ${sidecar.dataUrl}/demo/v1/chat/completions -H 'content-type: application/json' \\\n    -d '{"model":"demo","messages":[{"role":"user","content":"hi"}]}' -i\n  curl -s ${sidecar.adminUrl.replace('0.0.0.0', '127.0.0.1')}/status\n\n`);
  }
}

async function checkPolicy(args: string[]): Promise<void> {
  const { loadPolicyFile } = await import('./sidecar/config/policy-file.js');
  const file = args[0];
  if (!file || args.length > 1) throw new UsageError('check-policy takes one FILE');
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
    if (ref) say(`  ${u.name}: credential from Secret ${ref.name}, key ${ref.key}, which the controller reads in the policy's namespace (not checked here; until it exists, ${u.name} answers 503 and its fallback tiers serve)`);
  }
  const redis = verdict.spec.cache.redis;
  if (redis?.secretRef) {
    const { name, key } = redis.secretRef;
    say(
      redis.url
        ? `  shared cache: Redis password from Secret ${name}, key ${key}, which the controller reads in the policy's namespace (not checked here; until it exists, the sidecars connect to Redis without a password, and each answers from its own cache while Redis refuses them)`
        : `  shared cache: off (cache.redis.url is empty), so Secret ${name}, key ${key} (cache.redis.secretRef) is not used`,
    );
  }
}

async function controller(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      'config-listen': { type: 'string', default: '0.0.0.0:15443' },
      'health-listen': { type: 'string', default: '0.0.0.0:15080' },
      'webhook-listen': { type: 'string', default: '0.0.0.0:15444' },
      'webhook-client-ca': { type: 'string' },
      kubeconfig: { type: 'string' },
      resync: { type: 'string', default: '30s' },
      'status-refresh': { type: 'string', default: '5m' },
      'secret-poll': { type: 'string', default: '5s' },
      'leader-election-namespace': { type: 'string', default: process.env.POD_NAMESPACE ?? 'breakwater-system' },
      'lease-duration': { type: 'string', default: '15s' },
      identity: { type: 'string', default: process.env.POD_NAME },
      'sidecar-image': { type: 'string' },
      'advertise-url': { type: 'string' },
      'ca-file': { type: 'string' },
    },
  });
  const injecting = values['sidecar-image'] !== undefined;
  if (injecting && (!values['advertise-url'] || !values['ca-file'])) {
    throw new UsageError('injection (--sidecar-image) needs --advertise-url (how sidecars reach the controller) and --ca-file (the CA of its certificate)');
  }
  if (!values['tls-cert'] || !values['tls-key']) throw new UsageError('controller needs --tls-cert and --tls-key for the config stream');
  // Each is a timer's period: zero would spin. The controller resyncs at least twice per status refresh, so that one is held to a second.
  const resyncMs = durationFlag(values.resync, '--resync');
  const statusRefreshMs = durationFlag(values['status-refresh'], '--status-refresh', 1000);
  const secretPollMs = durationFlag(values['secret-poll'], '--secret-poll');
  const leaseDurationMs = durationFlag(values['lease-duration'], '--lease-duration');
  const { startController } = await import('./controller/controller.js');
  const log = createLogger(undefined, 'controller');
  let running: Awaited<ReturnType<typeof startController>> | undefined;
  const stop = () => void (running?.stop() ?? Promise.resolve()).then(() => log.flush(() => process.exit(0)));
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, stop);
  running = await startController({
    kubeconfig: values.kubeconfig,
    configListen: hostPort(values['config-listen'], '--config-listen'),
    healthListen: hostPort(values['health-listen'], '--health-listen'),
    tlsCertFile: values['tls-cert'],
    tlsKeyFile: values['tls-key'],
    resyncMs,
    statusRefreshMs,
    secretPollMs,
    injection: injecting
      ? { listen: hostPort(values['webhook-listen'], '--webhook-listen'), image: values['sidecar-image']!, controllerUrl: values['advertise-url']!, caFile: values['ca-file']!, clientCaFile: values['webhook-client-ca'] }
      : undefined,
    leaderElection: {
      namespace: values['leader-election-namespace'],
      identity: values.identity,
      leaseDurationMs,
      renewMs: leaseDurationMs / 3,
    },
    ownPod: process.env.POD_NAME && process.env.POD_UID ? { name: process.env.POD_NAME, uid: process.env.POD_UID } : undefined,
    log,
  });
  log.flush();
}

async function mockUpstream(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: { listen: { type: 'string', default: '127.0.0.1:15099' }, 'fail-percent': { type: 'string', default: '0' }, 'fingerprint-credentials': { type: 'boolean', default: false } },
  });
  const at = hostPort(values.listen, '--listen');
  const { MockUpstream } = await import('./sidecar/mock-upstream/mock-upstream.js');
  const mock = await MockUpstream.start({ host: at.host, port: at.port, failPercent: Number(values['fail-percent']), failure: { kind: 'status', status: 503 }, fingerprintCredentials: values['fingerprint-credentials'] });
  process.stdout.write(`mock upstream listening on ${mock.url}\n`);
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => void mock.close().then(() => process.exit(0)));
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'sidecar':
      return sidecar(rest);
    case 'check-policy':
      return checkPolicy(rest);
    case 'controller':
      return controller(rest);
    case 'mock-upstream':
      return mockUpstream(rest);
    default:
      throw new UsageError(command ? `unknown command "${command}"` : 'no command given');
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
    process.stderr.write(`${(err as Error).message}\n${USAGE}\n`);
    process.exit(2);
  }
  process.stderr.write(`${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
