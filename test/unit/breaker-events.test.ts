/**
 * BreakerOpened (and ConfigRejected) Events come from the leader alone, from
 * each pod's newest report wherever it arrived, once per opening: two
 * replicas' Reconcilers on fake API clients, with a pod whose reports reach
 * one replica or the other through the Service, and come again.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { CoreV1Api, CustomObjectsApi, V1ConfigMap } from '@kubernetes/client-node';
import { pino } from 'pino';
import { hashSpec, type SidecarReport } from '../../api/index.js';
import type { EventRecorder } from '../../controller/event-recorder.js';
import type { PolicyObject } from '../../controller/policy-object.js';
import { Reconciler } from '../../controller/reconciler.js';
import type { ReportRecorder } from '../../controller/report-store.js';

const POD = 'shop/chat-1';
const policy: PolicyObject = {
  apiVersion: 'breakwater.dev/v1alpha1',
  kind: 'ResiliencePolicy',
  metadata: { namespace: 'shop', name: 'chat', generation: 1, uid: 'uid-1', creationTimestamp: new Date(0) },
  spec: { podSelector: { matchLabels: { app: 'chat' } }, upstreams: [{ name: 'primary', url: 'http://127.0.0.1:9' }] } as unknown as PolicyObject['spec'],
};
const pod = { metadata: { namespace: 'shop', name: 'chat-1', labels: { app: 'chat' } } };
const version = { source: 'controller' as const, policy: 'shop/chat', generation: 1, hash: hashSpec(policy.spec) };

/** A replica: its Reconciler, the Events it recorded, and the reports it recorded for the leader (its ConfigMap). */
function replica(name: string, leading: { now: boolean }, now: () => number = Date.now) {
  const events: string[] = [];
  const recorded = new Map<string, string>();
  let recordedAt = 0;
  const reconciler = new Reconciler({
    custom: { patchNamespacedCustomObjectStatus: async ({ body }: { body: [{ value: unknown }] }) => ({ ...policy, status: body[0].value }) } as unknown as CustomObjectsApi,
    core: {} as CoreV1Api,
    events: { record: (_target: unknown, _type: string, reason: string, message: string) => events.push(`${reason}: ${message}`) } as unknown as EventRecorder,
    // Recorded a second ahead of the clock the leader stamps its own reports with: the recorded one is the newest, whatever the millisecond.
    reports: { save: (p: string, report: SidecarReport) => recorded.set(p.replace('/', '_'), JSON.stringify({ at: Date.now() + 1000 + ++recordedAt, report })), forget() {}, close() {} } as unknown as ReportRecorder,
    log: pino({ level: 'silent' }),
    isLeader: () => leading.now,
    coalesceMs: 60_000,
    now,
  });
  reconciler.upsertPolicy(policy);
  reconciler.upsertPod(pod);
  const configMap = (): V1ConfigMap => ({ metadata: { name: `breakwater-reports-${name}` }, data: Object.fromEntries(recorded) });
  return { reconciler, events, configMap };
}

const report = (opened: SidecarReport['opened'], open: number, rejected?: SidecarReport['rejected']) => ({
  applied: version,
  breakers: { primary: { closed: 1 - Math.min(open, 1), halfOpen: 0, open } },
  opened,
  ...(rejected ? { rejected } : {}),
});

describe('Events about what sidecars report', () => {
  it('are recorded by the leader alone, from the newest report wherever it came, once per (pod, upstream, breaker, opening time)', async (t) => {
    const a = replica('a', { now: false }); // serves the pod's stream; does not lead
    const b = replica('b', { now: true }); // the leader
    t.after(() => {
      a.reconciler.close();
      b.reconciler.close();
    });
    const opening = { upstream: 'primary', breaker: 'gpt-4o', openedAt: Date.UTC(2026, 0, 1, 12) };

    // The report of an opening reaches replica a, which records it for the leader.
    assert.equal(a.reconciler.hub.report(POD, report([opening], 1)), undefined);
    await a.reconciler.flush();
    assert.deepEqual(a.events, [], 'a replica that does not lead records no Event');
    b.reconciler.recordedReports(a.configMap());
    await b.reconciler.flush();
    assert.deepEqual(b.events, ['BreakerOpened: pod shop/chat-1: circuit breaker for upstream primary opened (scope gpt-4o) at 2026-01-01T12:00:00.000Z']);

    // The same opening again: sent to the leader itself, re-sent to a (every 30 s), recorded again.
    assert.equal(b.reconciler.hub.report(POD, report([opening], 1)), undefined);
    await b.reconciler.flush();
    assert.equal(a.reconciler.hub.report(POD, { ...report([opening], 1), breakers: { primary: { closed: 0, halfOpen: 1, open: 0 } } }), undefined);
    b.reconciler.recordedReports(a.configMap());
    await b.reconciler.flush();
    assert.equal(b.events.length, 1, `one opening, one Event: ${JSON.stringify(b.events)}`);

    // It closes and opens again: a new opening, one new Event.
    b.reconciler.hub.report(POD, report([], 0));
    await b.reconciler.flush();
    const again = { ...opening, openedAt: opening.openedAt + 5_000 }; // within the recorder's 30 s repeat limit
    a.reconciler.hub.report(POD, report([again], 1));
    b.reconciler.recordedReports(a.configMap());
    await b.reconciler.flush();
    assert.equal(b.events.length, 2, JSON.stringify(b.events));
    assert.notEqual(b.events[1], b.events[0], 'a new episode\'s message is its own, so no repeat limit swallows it (issue 26)');
    b.reconciler.hub.report(POD, report([again], 1));
    await b.reconciler.flush();
    assert.equal(b.events.length, 2, JSON.stringify(b.events));
    assert.deepEqual(a.events, []);

    // A rejected generation: one ConfigRejected, however many replicas the report reaches.
    const rejected = { version: { ...version, generation: 2, hash: 'h2' }, error: 'spec.upstreams: is required' };
    a.reconciler.hub.report(POD, report([again], 1, rejected));
    b.reconciler.recordedReports(a.configMap());
    await b.reconciler.flush();
    b.reconciler.hub.report(POD, report([again], 1, rejected));
    await b.reconciler.flush();
    assert.deepEqual(b.events.slice(2), ['ConfigRejected: pod shop/chat-1 rejected generation 2: spec.upstreams: is required']);
    assert.deepEqual(a.events, []);
  });

  it('are left to the leader before this one for openings from before it led, and fall back to open counts for a sidecar that does not say when its breakers opened', async (t) => {
    let now = Date.UTC(2026, 0, 1, 12);
    const leading = { now: false };
    const b = replica('b', leading, () => now);
    t.after(() => b.reconciler.close());
    b.reconciler.hub.report(POD, report([{ upstream: 'primary', breaker: '*', openedAt: now - 1000 }], 1));
    leading.now = true;
    b.reconciler.leadershipChanged(true);
    await b.reconciler.flush();
    assert.deepEqual(b.events, [], 'opened before this replica led: its predecessor\'s to record');
    now += 5000;
    b.reconciler.hub.report(POD, report([{ upstream: 'primary', breaker: '*', openedAt: now }], 1));
    await b.reconciler.flush();
    assert.equal(b.events.length, 1);

    // An older sidecar: no `opened`, only counts.
    const older = (open: number) => ({ applied: version, breakers: { primary: { closed: 1 - open, halfOpen: 0, open } } });
    b.reconciler.hub.report(POD, older(0));
    await b.reconciler.flush();
    b.reconciler.hub.report(POD, older(1));
    await b.reconciler.flush();
    b.reconciler.hub.report(POD, older(1));
    await b.reconciler.flush();
    assert.deepEqual(b.events.slice(1), ['BreakerOpened: pod shop/chat-1: circuit breaker for upstream primary opened']);
  });
});
