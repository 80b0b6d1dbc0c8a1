/** What a dialect is: the interface every API family's module implements, and the types it speaks in. */
import type { FailureClass } from '../../../api/index.js';
import type { SseEvent } from '../../../lib/index.js';
import type { WrittenEvent } from '../streams/stream-framing.js';

/** Codes of the answers the sidecar makes itself. */
export type LocalErrorCode =
  | 'circuit_open'
  | 'overloaded'
  | 'upstream_timeout'
  | 'upstream_unavailable'
  | 'retry_budget_exhausted'
  | 'request_too_large'
  | 'unknown_upstream'
  | 'invalid_request'
  | 'rate_limited'
  | 'stream_interrupted'
  | 'guardrail_blocked'
  | 'budget_exhausted';

export interface TokenUsage {
  input: number;
  output: number;
}

/** A pattern in an upstream's error body that names its failure class. */
export interface Recogniser {
  class: Extract<FailureClass, 'context-length' | 'content-filter' | 'overloaded'>;
  pattern: RegExp;
  /** Whose error text it is. */
  source: string;
}

/** Why an event ends a stream. */
export interface EventFailure {
  failure: FailureClass;
  detail: string;
}

/**
 * One piece of an answer's content as a stream event carries it: `channel` says which part of the
 * answer it continues (the text, the reasoning, a tool call's name or its arguments, per choice or
 * content block), `text` is what it adds (never empty).
 */
export interface Content {
  channel: string;
  text: string;
}

/** What one whole stream event says, read once from its parsed data by the dialect. */
export interface EventReading {
  /** The event ends the stream: an error event from the upstream, or not the JSON this API sends. */
  failure?: EventFailure;
  /** The content it adds, in order. */
  content?: Content[];
  /** It carries what recovery cannot vouch for (several choices, signed thinking, an API it does not know). */
  unverifiable?: boolean;
  /** It opens the answer or a content block without adding content (a role chunk, message_start): a new stream that takes up an answer leaves it out. */
  opens?: boolean;
  /** The choices it carries a part of, and those it says are finished (a stream is finished once every choice it carried is). */
  choices?: readonly number[];
  finished?: readonly number[];
  /** For an event without content that marks the answer's structure (Anthropic's content_block_start and _stop): which, and of which block. */
  structure?: string;
  /** Its place in the stream, for an API that numbers its events (the Responses API's sequence_number). */
  sequence?: number;
  /** It is the API's terminator ([DONE], message_stop, Ollama's done line). */
  terminal?: boolean;
  /** Token counts it reports (the last report of each count wins). */
  usage?: Partial<TokenUsage>;
}

/** One whole event of a stream, read once (../streams/stream-events.ts makes them): what every later step consumes. */
export interface StreamEvent {
  /** The event as it came, its separator included. */
  readonly raw: string;
  /** Its name and data (an NDJSON line is a "message" with the line as data); undefined for a comment or keep-alive. */
  readonly fields: SseEvent | undefined;
  /** What the dialect read in it. */
  readonly read: EventReading;
}

/** A whole stream the sidecar composes: events before the content, one per piece, and the closing ones. */
export interface ComposedStream {
  start: string[];
  content: string[];
  end: string[];
}

/** What the sidecar acts on in an app's request, as its API says it. */
export interface RequestFields {
  model?: string;
  stream?: boolean;
  /** The output-token cap (timeouts.perOutputToken, budgets' reservations). */
  maxTokens?: number;
  /** The answer must be JSON (validation.json). */
  jsonMode?: boolean;
  /** How many choices a stream must finish (OpenAI's `n`). */
  choices?: number;
  /** The app asked a stream for its usage itself. */
  usageAsked?: boolean;
}

export interface Dialect {
  readonly name: string;

  // The request half: what the app sends.

  /** The fields of a request body the sidecar acts on, read from its parsed JSON. */
  readRequest(json: Record<string, any>): RequestFields;
  /** The names the output-token cap goes by, for a body too long to parse, whose edges are only searched. */
  readonly outputCapFields: readonly string[];
  /** The request body asking for another model, in place (a fallback or hedge tier's `model`). */
  setModel(json: Record<string, any>, model: string): void;
  /** Whether a request without a `stream` field gets a stream. */
  readonly streamsByDefault: boolean;
  /**
   * Whether a request that may have reached the upstream can be sent again (a retry, a hedge, another
   * tier): a completion has no effect but its answer; a pass-through POST may have created something (a
   * file, a batch, a fine-tuning job, an image), so it is sent again only after a failure that says it was
   * not taken (see failure-classes' UNPROCESSED).
   */
  readonly replaysSafely: boolean;

  // The response half: what comes back, and what the sidecar writes in this API's shapes.

  /** Body of an answer the sidecar makes itself (always JSON). */
  errorBody(code: LocalErrorCode, message: string): string;
  /** An error body as this API's own servers write it (injected faults, the mock upstream). */
  upstreamErrorBody(status: number, message?: string): string;
  /** The event that ends a stream the sidecar has to break off (its framing writes it); `sequence`: the number of the last event the app had, for an API that numbers them. */
  streamError(code: LocalErrorCode, message: string, sequence?: number): WrittenEvent;
  /** For an API that numbers its events: the event renumbered (a recovered stream's events follow the app's numbering); undefined when it has no number. */
  withSequence?(event: string, data: string, sequence: number): string | undefined;
  /** What one whole stream event says (its SSE event name and data, or an NDJSON line as data). */
  readEvent(event: string, data: string): EventReading;
  /** The terminator to send the app when a finished stream ends without its own; undefined for an API without one. */
  readonly terminator: string | undefined;
  /** Whether a whole stream ends with a terminator (or a finish); false for an API whose ends the sidecar does not know. */
  readonly endsWithTerminator: boolean;
  /**
   * The same event carrying only some of its content: `keep` gives, for each of its content pieces in
   * order, the text to carry instead, or undefined to leave the piece out. For a new stream that takes
   * up an answer at a point inside one of its events.
   */
  withContent(event: string, data: string, keep: readonly (string | undefined)[]): string;
  /**
   * For mid-stream recovery by continuation: makes a request body (in place) ask for the answer that begins
   * with `text`, as a trailing assistant message; `continue-final-message` also sets the flags vLLM and its
   * kin want. Returns how much of `text` the request carries (Anthropic refuses trailing whitespace), or
   * undefined when the request cannot carry it (no chat messages, an API without prefill).
   */
  continueWith(json: Record<string, any>, text: string, style: 'prefill' | 'continue-final-message'): number | undefined;
  /**
   * For an API whose streams report usage only when asked (OpenAI's Chat Completions and Completions):
   * the body of a streamed request that asks for it, or undefined when it cannot or need not.
   */
  askUsage?(body: Buffer): Buffer | undefined;
  /** The body askUsage made, as the app sent it (for a server that refuses the option, such as Azure before 2024-09); undefined when it is not one. */
  unaskUsage?(body: Buffer): Buffer | undefined;
  /** For a stream whose usage the sidecar asked for and the app did not: the event as the app would have had it, or undefined to leave it out. */
  withoutAskedUsage?(event: StreamEvent): StreamEvent | undefined;
  /** Token usage reported in a parsed plain answer. */
  answerUsage(json: Record<string, any>): TokenUsage | undefined;
  /** Error-body recognisers, checked in order. */
  readonly recognisers: readonly Recogniser[];
  /** The text of a parsed plain answer; undefined when it is not a completion. */
  answerText(json: Record<string, any>): string | undefined;
  hasToolCalls(json: Record<string, any>): boolean;
  /** The API's own refusal field is set. */
  refused(json: Record<string, any>): boolean;
  /** Clamps the output-token cap (adding it when absent) and sets the temperature, in place. */
  limitOutput(json: Record<string, any>, maxTokens: number, temperature: number): void;
  /** A plain answer with `text`, in this API's success shape; undefined for a path whose answers are not text (no static or cache tier answers it). */
  composeAnswer?(model: string, text: string, usage: TokenUsage): string;
  /** A stream with `pieces` of text, in this API's success shape and framing. */
  composeStream?(model: string, pieces: string[], usage: TokenUsage): ComposedStream;
  readonly streamContentType: string;
}
