/**
 * A stream that survives a break after its first text: it relays the
 * stream, noting the text the app has been sent; when the stream fails (cut,
 * stall, error event, malformed event), it asks `again(delivered)` for a new
 * stream of the same request. A new stream either continues the text (its
 * request carried some of it) or starts the answer anew; either way its text
 * is held back until it has matched whatever of the delivered text its
 * request did not carry (all of it for a new answer: regenerate and verify),
 * and only the rest is relayed. The app reads one uninterrupted answer, with
 * an SSE comment before the terminator that says it was recovered (SDKs skip
 * comments). A new stream that diverges, or does not come, ends the stream
 * with the original failure. A stream that carries what recovery cannot
 * vouch for (tool-call or reasoning deltas) is never recovered, nor is one
 * that sent more text than it keeps a copy of.
 */
import { StringDecoder } from 'node:string_decoder';
import { StreamVerifier } from '../resilience/index.js';
import type { Dialect, StreamFraming } from './dialects/dialect.js';
import { EventSplitter } from './event-splitter.js';
import type { StreamBody, StreamEnd } from './stream-body.js';

export type RecoveryResult = 'recovered' | 'diverged' | 'failed' | 'refused';
/** How a new stream took up the answer; 'none' when no new stream was had. */
export type RecoveryStrategy = 'continuation' | 'regenerate' | 'none';

/** A new stream of the request; `continues`: how many characters of the delivered text its request carried. */
export interface NextStream {
  body: StreamBody;
  continues?: number;
}

export interface RecoveryDeps {
  dialect: Dialect;
  framing: StreamFraming;
  maxRecoveries: number;
  /** A new stream of the same request, given the text delivered, or undefined when none could be had (no time left, the chain failed). */
  again(delivered: string): Promise<NextStream | undefined>;
  /** Each recovery tried, with its result. */
  onRecovery(result: RecoveryResult, strategy: RecoveryStrategy): void;
}

type Failed = Extract<StreamEnd, { kind: 'failed' }>;

/** The most text a stream may have sent and still be recovered: a copy is kept to verify a new stream against. */
export const MAX_RECOVERABLE_CHARS = 1024 * 1024;

export class RecoveringStream implements StreamBody {
  private current: StreamBody;
  private delivered = '';
  private vouched = true;
  private recoveries = 0;
  /** While a new stream takes up the answer: its verifier, how it does, whether it has sent text yet, and the failure it replaces. */
  private verifying: { verifier: StreamVerifier; strategy: RecoveryStrategy; sawText: boolean; original: Failed } | undefined;
  private splitter: EventSplitter;
  private decoder = new StringDecoder('utf8');
  private end: StreamEnd | undefined;
  /** While a new stream is being had: resolved once it is (or none could be). */
  private recovering: Promise<void> | undefined;

  constructor(
    first: StreamBody,
    private readonly deps: RecoveryDeps,
  ) {
    this.current = first;
    this.splitter = new EventSplitter(deps.framing);
  }

  poll(): Buffer | StreamEnd | undefined {
    for (;;) {
      if (this.end) return this.end;
      if (this.recovering) return undefined;
      const next = this.current.poll();
      if (next === undefined) return undefined;
      if (Buffer.isBuffer(next)) {
        // A stream that cannot be recovered any more is only relayed (after what was held back): nothing in it needs reading.
        if (!this.vouched && !this.verifying) {
          const held = this.splitter.flush() + this.decoder.end();
          return held === '' ? next : Buffer.concat([Buffer.from(held), next]);
        }
        const relayed = !this.verifying && this.splitter.held === 0;
        const out = this.pass(next);
        if (typeof out !== 'string') return this.finish(out);
        // Passed whole (whole events in, none held back): the bytes as they came, not encoded again.
        if (relayed && this.splitter.held === 0 && Buffer.byteLength(out) === next.length) return next;
        if (out !== '') return Buffer.from(out);
        continue;
      }
      if (next.kind === 'failed') {
        const failure = this.verifying?.original ?? next;
        this.recovering = this.recover(failure).then(
          (outcome) => this.recovered(outcome),
          () => this.recovered(failure),
        );
        continue;
      }
      if (next.kind === 'complete' && this.verifying && !this.verifying.verifier.caughtUp) return this.finish(this.diverged());
      if (next.kind === 'complete' && this.verifying) this.deps.onRecovery('recovered', this.verifying.strategy);
      return this.finish(next);
    }
  }

  ready(): Promise<void> {
    return this.end ? Promise.resolve() : (this.recovering ?? this.current.ready());
  }

  cancel(): void {
    this.finish({ kind: 'cancelled' });
  }

  /** What of a chunk goes to the app (whole events), or how the stream ends. */
  private pass(chunk: Buffer): string | StreamEnd {
    let out = '';
    for (const { raw, fields } of this.splitter.push(this.decoder.write(chunk))) {
      const text = fields ? this.deps.dialect.streamText(fields.event, fields.data) : undefined;
      if (text === null) this.vouched = false;
      const v = this.verifying;
      if (!v) {
        if (typeof text === 'string') this.deliver(text);
        out += raw;
        continue;
      }
      if (text === null) return this.diverged();
      if (text === undefined) {
        // Until it has caught up, and its opening events, a new stream repeats what the app has.
        if (!v.verifier.caughtUp || (!v.sawText && fields !== undefined && this.deps.dialect.opensStream(fields.event, fields.data))) continue;
        if (this.deps.framing === 'sse' && this.deps.dialect.terminated(raw)) out += `: breakwater recovered this stream after: ${v.original.detail.replace(/[\r\n]/g, ' ')}\n\n`;
        out += raw;
        continue;
      }
      v.sawText = true;
      const verdict = v.verifier.push(text);
      if (verdict.kind === 'diverged') return this.diverged();
      if (verdict.kind === 'emit') {
        this.deliver(verdict.text);
        out += verdict.text === text ? raw : this.deps.dialect.withStreamText(fields!.event, fields!.data, verdict.text);
      }
    }
    return out;
  }

  /** Notes text sent to the app; past MAX_RECOVERABLE_CHARS the copy is dropped and the stream can no longer be recovered. */
  private deliver(text: string): void {
    if (!this.vouched) return;
    this.delivered += text;
    if (this.delivered.length <= MAX_RECOVERABLE_CHARS) return;
    this.vouched = false;
    this.delivered = '';
  }

  /** Tries a new stream after `failure`; the end to give when no recovery can follow. */
  private async recover(failure: Failed): Promise<StreamEnd | undefined> {
    if (this.verifying) this.deps.onRecovery('failed', this.verifying.strategy);
    if (!this.vouched) {
      this.deps.onRecovery('refused', 'none');
      return failure;
    }
    if (this.recoveries >= this.deps.maxRecoveries || this.delivered === '') return failure;
    this.recoveries++;
    this.current.cancel();
    const next = await this.deps.again(this.delivered);
    if (this.end) {
      next?.body.cancel(); // cancelled while it was being had: it has no reader
      return this.end;
    }
    if (!next) {
      this.deps.onRecovery('failed', 'none');
      return failure;
    }
    this.current = next.body;
    this.splitter = new EventSplitter(this.deps.framing);
    this.decoder = new StringDecoder('utf8');
    const notCarried = this.delivered.slice(next.continues ?? 0);
    this.verifying = { verifier: new StreamVerifier(notCarried), strategy: next.continues === undefined ? 'regenerate' : 'continuation', sawText: false, original: failure };
    return undefined;
  }

  /** A recovery is over: the stream goes on with the new stream, or ends with `outcome`. */
  private recovered(outcome: StreamEnd | undefined): void {
    this.recovering = undefined;
    if (outcome) this.finish(outcome);
  }

  private diverged(): StreamEnd {
    this.deps.onRecovery('diverged', this.verifying!.strategy);
    const original = this.verifying!.original;
    return { kind: 'failed', failure: original.failure, detail: `${original.detail}; a new attempt diverged from the text already sent` };
  }

  private finish(end: StreamEnd): StreamEnd {
    if (this.end) return this.end;
    this.end = end;
    this.current.cancel();
    return end;
  }
}
