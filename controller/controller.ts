/**
 * controller/ — the operator. This file assembles it: informers for
 * ResiliencePolicies and injected pods feed the level-based reconciler
 * (reconciler.ts), which writes status and decides each pod's config; the
 * config server (config-server.ts) streams that config to sidecars, which
 * authenticate with their pod-bound tokens (token-review.ts). Every replica
 * serves streams and, when injection is on, the pod admission webhook
 * (admission.ts, injection.ts); only the Lease holder (leader-election.ts)
 * writes status and records Events. A small Hono app serves health, readiness and metrics.
 */
import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { createAdaptorServer } from '@hono/node-server';
import { hostname } from 'node:os';
import { CoordinationV1Api, CoreV1Api, CustomObjectsApi, type V1ConfigMap } from '@kubernetes/client-node';
import { Hono } from 'hono';
import type { Logger } from 'pino';
import { Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { listen, type HostPort } from '../lib/index.js';
import { admissionHandler } from './admission.js';
import { chartTracingEnv } from './tracing-env.js';
import { createConfigServer } from './config-server.js';
import { createWebhookServer } from './webhook-server.js';
import { EventRecorder } from './event-recorder.js';
import { SharedConnectionKubeConfig } from './kube-config.js';
import { LeaderElector } from './leader-election.js';
import { metadataList, metadataWatch, type ObjectMetadata } from './metadata-watch.js';
import { GROUP, type PolicyObject } from './policy-object.js';
import { Reconciler } from './reconciler.js';
import { ReportRecorder, reportsConfigMapName, REPORTS_LABEL } from './report-store.js';
import { resilientInformer } from './resilient-informer.js';
import { resyncSchedule } from './resync-schedule.js';
import { SecretValues, secretReader } from './secret-values.js';
import { kubeTokenReview, tokenReviewer } from './token-review.js';

/** Pods the injector has given a sidecar carry this label; the controller watches only them. */
export const INJECTED_LABEL = 'breakwater.dev/injected';

export interface ControllerOptions {
  kubeconfig?: string;
  configListen: HostPort;
  healthListen: HostPort;
  tlsCertFile: string;
  tlsKeyFile: string;
  log: Logger;
  /** How often every policy is reconciled even without events (more often when statusRefreshMs needs it: resync-schedule.ts). */
  resyncMs?: number;
  /** A policy's status is written at least this often, so that its observedAt (kubectl's OBSERVED) says whether a controller watches it. */
  statusRefreshMs?: number;
  /** How often the Secrets connected pods need are read again (a rotated key reaches sidecars within about this). */
  secretPollMs?: number;
  /** Sidecar injection: the webhook's own port, the image, the URL sidecars reach this controller at, and the CA that signed its certificate. */
  injection?: { listen: HostPort; image: string; controllerUrl: string; caFile: string; clientCaFile?: string };
  /** Lease for leader election: only the leader writes status. */
  leaderElection?: { namespace: string; identity?: string; leaseDurationMs?: number; renewMs?: number };
  /** This replica's own Pod, when it runs in one: its reports ConfigMap belongs to it, and goes with it. */
  ownPod?: { name: string; uid: string };
}

export interface Controller {
  configUrl: string;
  /** Where the admission webhook answers (POST /mutate-pods), when injection is on. */
  webhookUrl?: string;
  healthUrl: string;
  reconciler: Reconciler;
  stop(): Promise<void>;
}


export async function startController(options: ControllerOptions): Promise<Controller> {
  const { log } = options;
  const kc = new SharedConnectionKubeConfig();
  if (options.kubeconfig) kc.loadFromFile(options.kubeconfig);
  else kc.loadFromDefault();
  const custom = kc.makeApiClient(CustomObjectsApi);
  const core = kc.makeApiClient(CoreV1Api);
  const le = options.leaderElection ?? { namespace: 'breakwater-system' };
  const identity = le.identity ?? `${hostname()}-${process.pid}`;
  const elector = new LeaderElector(
    kc.makeApiClient(CoordinationV1Api),
    { name: 'breakwater-controller', identity, namespace: le.namespace, leaseDurationMs: le.leaseDurationMs, renewMs: le.renewMs, onChange: (leader) => reconciler.leadershipChanged(leader) },
    log,
  );
  const owner = options.ownPod && { apiVersion: 'v1', kind: 'Pod', name: options.ownPod.name, uid: options.ownPod.uid };
  const reports = new ReportRecorder(core, { namespace: le.namespace, name: reportsConfigMapName(identity), owner }, log);
  const schedule = resyncSchedule(options.resyncMs ?? 30_000, options.statusRefreshMs ?? 5 * 60_000);
  const reconciler: Reconciler = new Reconciler({
    custom,
    core,
    events: new EventRecorder(core, log),
    reports,
    log,
    isLeader: () => elector.isLeader(),
    credentials: (namespace, refs) => secrets.credentialsFor(namespace, refs),
    observedRefreshMs: schedule.rewriteAfterMs,
  });
  const secrets = new SecretValues(secretReader(core), (namespace) => reconciler.secretsChanged(namespace), () => reconciler.wantedSecrets(), log, { pollMs: options.secretPollMs });
  elector.start();

  const policies = resilientInformer<PolicyObject>(
    kc,
    `/apis/${GROUP.group}/${GROUP.version}/${GROUP.plural}`,
    () => custom.listClusterCustomObject(GROUP),
    { upsert: (p) => reconciler.upsertPolicy(p), remove: (p) => reconciler.removePolicy(p), synced: () => reconciler.resyncAll() },
    log,
  );
  const selector = `${INJECTED_LABEL}=true`;
  // Injected pods as metadata only, and only until they finish: a pod that completes leaves the watch as deleted.
  const running = 'status.phase!=Succeeded,status.phase!=Failed';
  const pods = resilientInformer<ObjectMetadata>(
    kc,
    '/api/v1/pods',
    metadataList(kc, '/api/v1/pods', { labelSelector: selector, fieldSelector: running }),
    { upsert: (p) => reconciler.upsertPod(p), remove: (p) => reconciler.removePod(p), synced: () => reconciler.resyncAll() },
    log,
    { labelSelector: selector, fieldSelector: running, watch: metadataWatch(kc) },
  );
  const recorded = resilientInformer<V1ConfigMap>(
    kc,
    `/api/v1/namespaces/${le.namespace}/configmaps`,
    () => core.listNamespacedConfigMap({ namespace: le.namespace, labelSelector: REPORTS_LABEL }),
    { upsert: (cm) => reconciler.recordedReports(cm), remove: (cm) => reconciler.recordedReports(cm, true), synced: () => reconciler.resyncAll() },
    log,
    { labelSelector: REPORTS_LABEL },
  );
  const resync = setInterval(() => reconciler.resyncAll(), schedule.resyncMs);
  resync.unref();

  const injection = options.injection;
  const admit =
    injection &&
    admissionHandler({
      core,
      log,
      context: () => ({ image: injection.image, controllerUrl: injection.controllerUrl, controllerCa: readFileSync(injection.caFile, 'utf8'), tracingEnv: chartTracingEnv(process.env) }),
      // A policy applied together with its workload may not be in the cache yet: then ask the API server.
      policyFor: async (pod, namespace) =>
        reconciler.policyFor(pod, namespace) ??
        reconciler.policyFor(pod, namespace, ((await custom.listNamespacedCustomObject({ ...GROUP, namespace })) as { items: PolicyObject[] }).items),
    });
  const tls = { cert: readFileSync(options.tlsCertFile), key: readFileSync(options.tlsKeyFile) };
  const configServer = createConfigServer({ ...tls, authenticate: tokenReviewer({ review: kubeTokenReview(kc) }), hub: reconciler.hub, log });
  const clientCa = injection?.clientCaFile ? readFileSync(injection.clientCaFile) : undefined;
  const webhookServer = admit && createWebhookServer({ ...tls, clientCa, admit: admit as (review: never) => Promise<unknown>, log });

  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'breakwater_controller_process_' });
  new Gauge({
    name: 'breakwater_controller_connected_sidecars',
    help: 'Sidecar config streams open on this replica.',
    registers: [registry],
    collect() {
      this.set(reconciler.hub.size);
    },
  });
  new Gauge({
    name: 'breakwater_controller_leader',
    help: '1 while this replica holds the leader lease (and writes status).',
    registers: [registry],
    collect() {
      this.set(elector.isLeader() ? 1 : 0);
    },
  });
  new Gauge({
    name: 'breakwater_controller_policy_pods',
    help: 'Pods per policy as its status says: targeted, synced, and with an open breaker.',
    labelNames: ['policy', 'state'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const [policy, pods] of reconciler.podCounts()) {
        this.set({ policy, state: 'targeted' }, pods.targeted);
        this.set({ policy, state: 'synced' }, pods.synced);
        this.set({ policy, state: 'with_open_breaker' }, pods.withOpenBreaker);
      }
    },
  });
  new Gauge({
    name: 'breakwater_controller_status_writes',
    help: 'Status writes made by this replica since it started.',
    registers: [registry],
    collect() {
      this.set(reconciler.statusWrites);
    },
  });
  const app = new Hono();
  app.get('/healthz', (c) => c.text('ok'));
  app.get('/readyz', (c) => (policies.hasSynced && pods.hasSynced ? c.text('ready') : c.text('informers not synced', 503)));
  app.get('/metrics', async (c) => c.body(await registry.metrics(), 200, { 'content-type': registry.contentType }));
  const healthServer = createAdaptorServer({ fetch: app.fetch }) as Server;

  const [configUrl, healthUrl, webhookUrl] = await Promise.all([
    listen(configServer, options.configListen, 'https'),
    listen(healthServer, options.healthListen, 'http'),
    webhookServer && injection ? listen(webhookServer, injection.listen, 'https') : undefined,
  ]);
  log.info({ configUrl, healthUrl, webhookUrl }, 'controller started');
  return {
    configUrl,
    healthUrl,
    webhookUrl,
    reconciler,
    async stop() {
      clearInterval(resync);
      secrets.close();
      await elector.stop();
      await reconciler.close(); // the config streams end with a drain notice first
      configServer.closeAllConnections();
      configServer.close();
      webhookServer?.close();
      healthServer.close();
      await Promise.all([policies.stop(), pods.stop(), recorded.stop()]);
    },
  };
}
