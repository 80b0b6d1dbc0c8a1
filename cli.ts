#!/usr/bin/env node
/**
 * The `breakwater` command. Subcommands:
 *   sidecar --policy FILE | --demo  [--listen 127.0.0.1:15001] [--admin 0.0.0.0:15021]
 *   check-policy FILE [--kubeconfig F [--namespace NS]]
 *   controller --tls-cert FILE --tls-key FILE [--config-listen 0.0.0.0:15443] [--health-listen 0.0.0.0:15080] [--kubeconfig FILE] [--resync 30s] [--status-refresh 5m] [--secret-poll 5s] [--leader-election-namespace NS] [--lease-duration 15s] [--identity NAME]
 *              [--sidecar-image IMAGE --advertise-url URL --ca-file FILE [--webhook-listen 0.0.0.0:15444] [--webhook-client-ca FILE]]
 *              (serves the injection webhook at /mutate-pods on its own port; with --webhook-client-ca, only to callers whose client certificate it signed)
 *   mock-upstream [--listen 127.0.0.1:15099] [--fail-percent N] [--fingerprint-credentials]
 * Its usage text and shared flag parsing are in cli/usage.ts, check-policy in cli/check-policy.ts.
 */
import { parseArgs } from 'node:util';
import { durationFlag, hostPort, USAGE, UsageError } from './cli/usage.js';
import { createLogger } from './sidecar/log.js';

// Each subcommand imports what it needs when it runs: the sidecar must not pay for the controller's Kubernetes client.

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
    const { budgetReports } = await import('./sidecar/budget-reports.js');
    const { concurrencyReports } = await import('./sidecar/concurrency-reports.js');
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
      budgets: () => budgetReports(sidecar.state.budgets),
      concurrency: () => concurrencyReports(sidecar.state.live()),
      sharedStore: () => ({ off: undefined, ready: 'available' as const, unavailable: 'unavailable' as const })[sidecar.state.fleet.status().store],
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
      return (await import('./cli/check-policy.js')).checkPolicy(rest);
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
