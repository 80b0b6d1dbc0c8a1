/**
 * A policy's status says how long ago a controller looked at it: the leader
 * writes it when it changes, and rewrites an unchanged one once its
 * observedAt is older than the refresh interval (--status-refresh), so a
 * growing observedAt means no controller runs, whatever --resync is (the
 * controller resyncs as often as the refresh needs: resync-schedule.ts). A
 * Reconciler on a fake API client and an injectable clock.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import { pino } from 'pino';
import type { EventRecorder } from '../../controller/event-recorder.js';
import type { PolicyObject } from '../../controller/policy-object.js';
import { Reconciler } from '../../controller/reconciler.js';
import { resyncSchedule } from '../../controller/resync-schedule.js';
import type { ReportRecorder } from '../../controller/report-store.js';

const START = Date.UTC(2026, 11, 7, 12);
const policy: PolicyObject = {
  apiVersion: 'breakwater.dev/v1alpha1',
  kind: 'ResiliencePolicy',
  metadata: { namespace: 'shop', name: 'chat', generation: 1, uid: 'uid-1', creationTimestamp: new Date(0) },
  spec: { podSelector: { matchLabels: { app: 'chat' } }, upstreams: [{ name: 'primary', url: 'http://127.0.0.1:9' }] } as unknown as PolicyObject['spec'],
};

function leader(observedRefreshMs?: number) {
  const clock = { now: START };
  const written: string[] = [];
  const reconciler = new Reconciler({
    custom: {
      patchNamespacedCustomObjectStatus: async ({ body }: { body: [{ value: PolicyObject['status'] }] }) => {
        written.push(body[0].value!.observedAt!);
        const updated = { ...policy, status: body[0].value };
        reconciler.upsertPolicy(updated); // as the watch would bring it back
        return updated;
      },
    } as unknown as CustomObjectsApi,
    core: {} as CoreV1Api,
    events: { record() {} } as unknown as EventRecorder,
    reports: { save() {}, forget() {}, close() {} } as unknown as ReportRecorder,
    log: pino({ level: 'silent' }),
    isLeader: () => true,
    coalesceMs: 0,
    now: () => clock.now,
    observedRefreshMs,
  });
  reconciler.upsertPolicy(policy);
  const resync = async (at: number) => {
    clock.now = START + at;
    reconciler.resyncAll();
    await reconciler.flush();
  };
  return { reconciler, written, resync };
}

describe('status.observedAt', () => {
  it('is rewritten, with nothing else changed, once it is older than --status-refresh, and not before', async (t) => {
    const { reconciler, written, resync } = leader(10_000);
    t.after(() => reconciler.close());
    await resync(0);
    assert.deepEqual(written, [new Date(START).toISOString()], 'the first status');
    await resync(5_000);
    await resync(9_999);
    assert.equal(written.length, 1, 'fresh and unchanged: not written');
    await resync(10_000);
    assert.deepEqual(written.at(-1), new Date(START + 10_000).toISOString(), 'refreshed at the interval');
    await resync(15_000);
    assert.equal(written.length, 2);
  });

  it('is refreshed every 5 minutes by default', async (t) => {
    const { reconciler, written, resync } = leader();
    t.after(() => reconciler.close());
    await resync(0);
    await resync(5 * 60_000 - 1);
    assert.equal(written.length, 1);
    await resync(5 * 60_000);
    assert.equal(written.length, 2);
  });

  it('is rewritten at least every --status-refresh, also when it is shorter than --resync (red team 26, F9)', async (t) => {
    for (const [resyncMs, refreshMs] of [[30_000, 2_000], [30_000, 5 * 60_000], [1_000, 1_000]] as const) {
      const schedule = resyncSchedule(resyncMs, refreshMs);
      assert.ok(schedule.resyncMs <= resyncMs, 'never resyncs less often than asked');
      const { reconciler, written, resync } = leader(schedule.rewriteAfterMs);
      t.after(() => reconciler.close());
      // Resyncs on the schedule's interval, each a few milliseconds late, for ten refresh intervals.
      for (let tick = 0; tick * schedule.resyncMs <= 10 * refreshMs; tick++) await resync(tick * schedule.resyncMs + (tick % 3) * 5);
      const at = written.map((w) => Date.parse(w));
      const gaps = at.slice(1).map((w, i) => w - at[i]!);
      assert.ok(gaps.length >= 9, `${resyncMs}/${refreshMs}: rewritten ${gaps.length + 1} times`);
      assert.ok(Math.max(...gaps) <= refreshMs + 10, `${resyncMs}/${refreshMs}: observedAt at most ${refreshMs} ms old (plus a late tick): ${JSON.stringify(gaps)}`);
    }
  });
});
