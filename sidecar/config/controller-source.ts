/**
 * Config from the controller: a long-lived server-sent-event stream
 * (api/protocol.ts) opened with the pod's projected token, re-read on every
 * connect since the kubelet rotates it. Snapshots are validated and applied
 * whole; the last good one is kept on disk (an emptyDir: snapshots.ts) and
 * applied at start-up, so the sidecar keeps enforcing its policy while the controller is
 * away, across its own restarts too; a Secret key the controller says it has
 * not read keeps the value it had (unread-credentials.ts). Reconnects back off with jitter, and the
 * backoff starts over only after a healthy stream (see HEALTHY_STREAM_MS); a
 * reconnect that brings the snapshot already in force changes nothing (no
 * re-apply, no re-write of the kept copy). What is applied, and breaker
 * states, are reported back (controller-reports.ts).
 *
 * What the stream carries is read as distrustfully as a policy file: an event
 * that is not a snapshot (not JSON, no version) is rejected and logged like an
 * invalid policy, the last good config stays, and the stream is read on.
 * Nothing read from it may throw out of the stream's event handler, where it
 * would take the process down.
 */
import { readFileSync } from 'node:fs';
import { request, type RequestOptions } from 'node:https';
import { readNoPolicy, readSnapshot, type ConfigVersion, type SidecarReport, type UncheckedSnapshot } from '../../api/index.js';
import { SseReader, type SseEvent } from '../../lib/index.js';
import { backoffDelay, systemClock, type Clock } from '../resilience/index.js';
import { reporter, type ReportSources } from './controller-reports.js';
import type { RuntimeConfig } from './runtime-config.js';
import { compileSnapshot, keepSnapshot, MAX_SNAPSHOT_CHARS, readKeptSnapshot, snapshotIdentity } from './snapshots.js';
import { keepUnreadCredentials } from './unread-credentials.js';

export interface ControllerSourceOptions extends ReportSources {
  /** https://controller:15443, or several replicas' URLs tried in turn. */
  urls: string[];
  tokenFile: string;
  caFile?: string;
  /** The CA as PEM text, when no file is given (the injector passes it in the environment). */
  ca?: string;
  /** Where the last good snapshot is kept. */
  cacheFile?: string;
  /** Puts a config in force, or says why it cannot be (the last good one then stays). */
  apply(config: RuntimeConfig): { ok: true } | { ok: false; error: string };
  reportIntervalMs?: number;
  /** A stream silent for this long (no heartbeat) is considered dead. */
  silenceMs?: number;
  /** Deadline for connecting to a replica, TLS and response headers included (see CONNECT_TIMEOUT_MS). */
  connectTimeoutMs?: number;
  /** Times reconnects and how long a stream stayed up (tests drive a manual one); a connection's own deadlines run on real time. */
  clock?: Clock;
  /** The jitter's source, in [0, 1) (tests fix it to see the backoff's ceiling). */
  random?: () => number;
}

const RECONNECT = { baseMs: 500, maxMs: 30_000, multiplier: 2, jitter: 'full' as const };
/**
 * How long a stream must stay up, after delivering the controller's answer for this pod (a snapshot now
 * in force, or no-policy), before its end starts the backoff over from its base. A 200 alone proves
 * nothing: a controller that answers and then drops the stream, or sends an event over the size cap,
 * would otherwise be reconnected to every ~500 ms, each time re-sending its snapshot and paying a
 * TokenReview. With this, such a controller sees the backoff grow to its cap, and one that drops a
 * healthy stream at worst one reconnect per 10 s. A stream that served that long was a healthy one:
 * its loss (a controller rollout) is retried within the backoff's base again.
 */
const HEALTHY_STREAM_MS = 10_000;
/**
 * A controller that stops (a rollout, a scale-down) says so first (`event: draining`): its streams end
 * through no fault of theirs, and the next connection goes at the backoff's base, however short the
 * stream was. At most once per this long, so a controller that sends it on every stream cannot make
 * its sidecars reconnect in a storm.
 */
const DRAIN_RESET_MS = 10_000;
/**
 * How long connecting to a replica may take, TLS handshake and response headers included. During a
 * controller rollout a reconnect can go to a replica that is going away, and a SYN to a pod that is
 * gone waits for the kernel's timeout (over two minutes): the deadline moves on to another within seconds.
 */
const CONNECT_TIMEOUT_MS = 5_000;
/** What of a refusal's body is kept for the log. */
const MAX_REFUSAL_CHARS = 1024;

export function followController(options: ControllerSourceOptions): { stop(): void } {
  const { log } = options;
  const clock = options.clock ?? systemClock;
  let applied: ConfigVersion | null = null;
  /** The identity of the snapshot in force, so the same one brought again by a reconnect is not applied twice. */
  let inForce: string | undefined;
  /** The snapshot in force: its values stay for the keys a later one says the controller has not read (unread-credentials.ts). */
  let kept: UncheckedSnapshot | undefined;
  let rejected: SidecarReport['rejected'];
  let stopped = false;
  let failures = 0;
  /** When a drain notice last started the backoff over. */
  let drainResetAt: number | undefined;
  let current: ReturnType<typeof request> | undefined;
  let urlIndex = 0;
  const url = () => options.urls[urlIndex % options.urls.length]!;
  const tls = (): RequestOptions => ({ ca: options.caFile ? readFileSync(options.caFile) : options.ca, headers: { authorization: `Bearer ${readFileSync(options.tokenFile, 'utf8').trim()}` } });

  const take = (snapshot: UncheckedSnapshot, from: string, identity: string): boolean => {
    const compiled = compileSnapshot(snapshot);
    const result = 'error' in compiled ? compiled : options.apply(compiled.config);
    if ('error' in result) {
      rejected = { version: snapshot.version, error: result.error };
      log.error({ version: snapshot.version, error: result.error }, `config from ${from} rejected; the last good config stays in force`);
      return false;
    }
    applied = snapshot.version;
    rejected = undefined;
    inForce = identity;
    kept = snapshot;
    return true;
  };

  const onDisk = options.cacheFile === undefined ? undefined : readKeptSnapshot(options.cacheFile, log);
  if (onDisk && take(onDisk, 'the last good copy on disk', snapshotIdentity(onDisk))) log.info({ version: onDisk.version }, 'applied the last good config from disk');

  const persist = (snapshot: UncheckedSnapshot) => {
    if (options.cacheFile) keepSnapshot(options.cacheFile, snapshot, log);
  };

  const report = reporter(options, url, tls, () => ({ applied, rejected }));
  const reporting = setInterval(() => report(), options.reportIntervalMs ?? 2000);
  reporting.unref();

  /** Takes one event of the stream; true when it is the controller's answer for this pod (a snapshot now in force, or no-policy). A drain notice is the caller's. */
  const handleEvent = ({ event, data }: SseEvent): boolean => {
    if (event === 'snapshot') {
      const read = readSnapshot(data);
      if (!read.ok) {
        // Without a readable version there is nothing to name in a report's `rejected`: the log says it.
        log.error({ error: read.error }, 'config from the controller rejected: not a snapshot; the last good config stays in force');
        return false;
      }
      const snapshot = keepUnreadCredentials(kept, read.snapshot);
      const identity = snapshotIdentity(snapshot);
      let inEffect = identity === inForce;
      if (inEffect) {
        log.debug({ version: snapshot.version }, 'config from the controller already in force');
      } else if (take(snapshot, 'the controller', identity)) {
        persist(snapshot);
        log.info({ version: snapshot.version }, 'config from the controller applied');
        inEffect = true;
      }
      report(true);
      return inEffect;
    }
    if (event === 'no-policy') {
      const reason = readNoPolicy(data);
      if (reason === undefined) log.warn('malformed no-policy event from the controller; ignored');
      else log.warn({ reason }, 'the controller has no policy for this pod; keeping the config in force');
      return reason !== undefined;
    }
    return false;
  };

  const connect = () => {
    if (stopped) return;
    const events = new SseReader();
    let silence: NodeJS.Timeout | undefined;
    const alive = () => {
      clearTimeout(silence);
      silence = setTimeout(() => current?.destroy(new Error('config stream silent')), options.silenceMs ?? 45_000);
    };
    let done = false;
    /** When the controller answered 200, and whether the stream has since delivered its answer for this pod. */
    let answeredAt: number | undefined;
    let delivered = false;
    /** The controller said it is stopping before this stream ended. */
    let drained = false;
    const retry = (why: string) => {
      clearTimeout(silence);
      if (stopped || done) return;
      done = true;
      if (delivered && answeredAt !== undefined && clock.now() - answeredAt >= HEALTHY_STREAM_MS) failures = 0;
      else if (drained && (drainResetAt === undefined || clock.now() - drainResetAt >= DRAIN_RESET_MS)) {
        drainResetAt = clock.now();
        failures = 0;
      }
      const delay = backoffDelay(RECONNECT, ++failures, 0, options.random);
      urlIndex++; // the next replica, if there are several
      log.warn({ why, retryInMs: Math.round(delay) }, 'config stream lost');
      clock.setTimer(connect, delay);
    };
    // Every wait of a connection has a deadline: connect, TLS, response headers; after them, the silence timer.
    const connecting = setTimeout(() => current?.destroy(new Error(`no answer within ${(options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS) / 1000} s (connect, TLS, headers)`)), options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS);
    try {
      const stream = request(`${url()}/v1/config?pod=${encodeURIComponent(options.pod)}`, tls(), (res) => {
        clearTimeout(connecting);
        if (res.statusCode !== 200) {
          // A refusal is read for the log within the same deadline; one that stalls, drips or breaks is given up all the same.
          let body = '';
          const reading = setTimeout(() => stream.destroy(new Error('a refusal that did not end')), options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS);
          res.on('data', (d: Buffer) => {
            if (body.length < MAX_REFUSAL_CHARS) body += d.toString('utf8', 0, MAX_REFUSAL_CHARS - body.length);
          });
          res.on('error', () => {});
          res.on('close', () => {
            clearTimeout(reading);
            retry(`controller answered ${res.statusCode}: ${body}`);
          });
          return;
        }
        answeredAt = clock.now();
        alive();
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          alive();
          try {
            for (const event of events.push(chunk)) {
              if (event.event === 'draining') drained = true;
              else if (handleEvent(event)) delivered = true;
            }
            if (events.pending > MAX_SNAPSHOT_CHARS) stream.destroy(new Error(`an event longer than ${MAX_SNAPSHOT_CHARS} characters`));
          } catch (err) {
            // A bug, not the controller's data (that is checked above): start over on a new stream rather than crash.
            log.error({ err: (err as Error).message }, 'could not take an event from the config stream');
            stream.destroy(err as Error);
          }
        });
        res.on('close', () => retry('stream ended'));
      });
      current = stream;
    } catch (err) {
      clearTimeout(connecting);
      return retry((err as Error).message);
    }
    current.on('error', (err) => {
      clearTimeout(connecting);
      retry(err.message);
    });
    current.end();
  };
  connect();

  return {
    stop() {
      stopped = true;
      clearInterval(reporting);
      current?.destroy();
    },
  };
}
