/**
 * The OTEL_* variables the injector hands a sidecar from its pod (the red
 * team's findings, issue 30): `$(VAR)` references come with the variables
 * they name, placed before them, or the variable is skipped and said so;
 * envFrom is followed key by key; TLS file paths are not passed; one
 * container's settings are taken, so another's OTEL_SDK_DISABLED does not
 * switch the sidecar's tracing off.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { V1Container, V1Pod } from '@kubernetes/client-node';
import { injectSidecar, STATUS_ANNOTATION } from '../../controller/injection.js';
import { referencesIn, tracingEnv } from '../../controller/tracing-env.js';

const pod = (...containers: V1Container[]): V1Pod => ({ metadata: { name: 'p' }, spec: { containers } });
const chart = [{ name: 'OTEL_EXPORTER_OTLP_ENDPOINT', value: 'http://collector:4318' }];

describe('the OTEL_* variables a sidecar gets from its pod', () => {
  it('reads $(VAR) references as Kubernetes does', () => {
    assert.deepEqual(referencesIn('http://$(HOST_IP):$(PORT)/x $$(NOT) $ $('), ['HOST_IP', 'PORT']);
  });

  it('copies what a $(VAR) names, before the variable that uses it, and skips one it cannot give', () => {
    const app: V1Container = {
      name: 'app',
      env: [
        { name: 'HOST_IP', valueFrom: { fieldRef: { fieldPath: 'status.hostIP' } } },
        { name: 'PORT', value: '4318' },
        { name: 'BASE', value: 'http://$(HOST_IP):$(PORT)' },
        { name: 'TOKEN', valueFrom: { secretKeyRef: { name: 's', key: 'k' } } },
        { name: 'NODE_OPTIONS', value: '--inspect=0.0.0.0' },
        { name: 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', value: '$(BASE)/v1/traces' },
        { name: 'OTEL_EXPORTER_OTLP_HEADERS', value: 'authorization=$(TOKEN)' },
        { name: 'OTEL_BSP_MAX_QUEUE_SIZE', value: '$(NODE_OPTIONS)' },
        { name: 'OTEL_TRACES_SAMPLER_ARG', value: '$(UNDEFINED_HERE)' },
      ],
    };
    const got = tracingEnv(pod(app), chart);
    assert.deepEqual(got.env, [
      { name: 'HOST_IP', valueFrom: { fieldRef: { fieldPath: 'status.hostIP' } } },
      { name: 'PORT', value: '4318' },
      { name: 'BASE', value: 'http://$(HOST_IP):$(PORT)' },
      { name: 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', value: '$(BASE)/v1/traces' },
      { name: 'OTEL_TRACES_SAMPLER_ARG', value: '$(UNDEFINED_HERE)' }, // not the container's: expands in the sidecar as in the app
      ...chart,
    ]);
    assert.equal(got.from, 'app');
    assert.deepEqual(got.skipped, ['OTEL_EXPORTER_OTLP_HEADERS: $(TOKEN) is a Secret\'s key', 'OTEL_BSP_MAX_QUEUE_SIZE: $(NODE_OPTIONS) is a variable the sidecar keeps its own']);
  });

  it('follows envFrom key by key, passes no TLS file, and takes one container\'s settings (its OTEL_SDK_DISABLED only)', () => {
    const other: V1Container = { name: 'other', env: [{ name: 'OTEL_SDK_DISABLED', value: 'true' }] };
    const app: V1Container = {
      name: 'app',
      envFrom: [{ configMapRef: { name: 'otel-config' } }],
      env: [
        { name: 'OTEL_EXPORTER_OTLP_CERTIFICATE', value: '/etc/app-certs/ca.pem' },
        { name: 'OTEL_BSP_EXPORT_TIMEOUT', valueFrom: { resourceFieldRef: { resource: 'limits.cpu' } } },
      ],
    };
    const setByEnvFrom = new Map([['app', new Set(['OTEL_EXPORTER_OTLP_ENDPOINT', 'OTEL_EXPORTER_OTLP_CLIENT_KEY', 'DATABASE_URL'])]]);
    const got = tracingEnv(pod(other, app), [], setByEnvFrom);
    assert.equal(got.from, 'app', 'the container that exports traces');
    assert.deepEqual(got.env, [
      { name: 'OTEL_BSP_EXPORT_TIMEOUT', valueFrom: { resourceFieldRef: { resource: 'limits.cpu', containerName: 'app' } } },
      { name: 'OTEL_EXPORTER_OTLP_ENDPOINT', valueFrom: { configMapKeyRef: { name: 'otel-config', key: 'OTEL_EXPORTER_OTLP_ENDPOINT', optional: true } } },
    ]);
    const two = { ...app, envFrom: [{ configMapRef: { name: 'a' } }, { secretRef: { name: 'b' } }] };
    assert.deepEqual(tracingEnv(pod(two), [], setByEnvFrom).skipped, ['OTEL_EXPORTER_OTLP_ENDPOINT: set through envFrom, by one of 2 sources']);
    assert.deepEqual(tracingEnv(pod(other), chart).env, chart, 'a container that only turns its own SDK off is not followed');
  });

  it('says in the pod\'s status what it took and skipped', () => {
    const app: V1Container = {
      name: 'app',
      env: [
        { name: 'TOKEN', valueFrom: { secretKeyRef: { name: 's', key: 'k' } } },
        { name: 'OTEL_EXPORTER_OTLP_HEADERS', value: 'authorization=$(TOKEN)' },
        { name: 'OTEL_EXPORTER_OTLP_ENDPOINT', value: 'http://$(LATER)' },
        { name: 'LATER', value: 'defined after its user: expands in neither container' },
      ],
    };
    const context = { image: 'i', controllerUrl: 'https://c', controllerCa: 'CA', policy: { name: 'p', spec: { upstreams: [] } as never }, tracingEnv: chart };
    const injected = injectSidecar(pod(app), context);
    const status = JSON.parse(injected.metadata!.annotations![STATUS_ANNOTATION]!);
    assert.equal(status.tracingFrom, 'app');
    assert.deepEqual(status.tracingSkipped, ['OTEL_EXPORTER_OTLP_HEADERS: $(TOKEN) is a Secret\'s key']);
    const sidecarEnv = injected.spec!.initContainers![0]!.env!.filter((e) => !e.name.startsWith('BREAKWATER_') && !e.name.startsWith('POD_'));
    assert.deepEqual(sidecarEnv, [{ name: 'OTEL_EXPORTER_OTLP_ENDPOINT', value: 'http://$(LATER)' }]);
  });
});
