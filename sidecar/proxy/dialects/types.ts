/** What a dialect is: the interface every API family's module implements, and the types it speaks in. */
import type { FailureClass } from '../../../api/index.js';

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

export type StreamFraming = 'sse' | 'ndjson';

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

/** A whole stream the sidecar composes: events before the content, one per piece, and the closing ones. */
export interface ComposedStream {
  start: string[];
  content: string[];
  end: string[];
}

export interface Dialect {
  readonly name: string;
  /** Body of an answer the sidecar makes itself (always JSON). */
  errorBody(code: LocalErrorCode, message: string): string;
  /** An error body as this API's own servers write it (injected faults, the mock upstream). */
  upstreamErrorBody(status: number, message?: string): string;
  /** The event that ends a stream the sidecar has to break off. */
  streamError(framing: StreamFraming, code: LocalErrorCode, message: string): string;
  /** Whether a piece of a stream (whole events) holds this API's terminator; undefined when it has none to check. */
  terminated(events: string): boolean | undefined;
  /**
   * When a piece of a stream (whole events) says the answer finished (OpenAI's finish_reason, Anthropic's
   * stop_reason): the terminator to send the app should the stream end cleanly without its own; undefined
   * when it does not say so (a stream that ends without either was cut).
   */
  missingTerminator(events: string): string | undefined;
  /**
   * Why one whole stream event (its SSE event name and data, or an NDJSON line) ends the stream: an error
   * event from the upstream (Anthropic's `event: error`, an OpenAI `{"error": ...}` chunk, Ollama's
   * `{"error": "..."}`), or an event that is not the JSON this API sends. Undefined for a good event.
   */
  eventFailure(event: string, data: string): EventFailure | undefined;
  /**
   * For mid-stream recovery: the answer text a whole stream event carries; undefined for an event without
   * text (a role, a finish, usage); null for one recovery cannot vouch for (tool-call or reasoning deltas,
   * several choices), or for an API whose events it does not know.
   */
  streamText(event: string, data: string): string | null | undefined;
  /**
   * Whether a stream event (without text) opens a stream or a content block: OpenAI's role chunk, Anthropic's
   * message_start and content_block_start. A new stream that takes up an answer the app has begun drops them.
   */
  opensStream(event: string, data: string): boolean;
  /** The same text event (one that `streamText` read), carrying `text` instead, as a raw event. */
  withStreamText(event: string, data: string, text: string): string;
  /**
   * For mid-stream recovery by continuation: makes a request body (in place) ask for the answer that begins
   * with `text`, as a trailing assistant message; `continue-final-message` also sets the flags vLLM and its
   * kin want. Returns how much of `text` the request carries (Anthropic refuses trailing whitespace), or
   * undefined when the request cannot carry it (no chat messages, an API without prefill).
   */
  continueWith(json: Record<string, any>, text: string, style: 'prefill' | 'continue-final-message'): number | undefined;
  /** Token usage reported in a text (a stream's events), over what `before` had (the last report of each count wins). */
  usage(text: string, before?: TokenUsage): TokenUsage | undefined;
  /** Token usage reported in a parsed plain answer. */
  answerUsage(json: Record<string, any>): TokenUsage | undefined;
  /** Error-body recognisers, checked in order. */
  readonly recognisers: readonly Recogniser[];
  /** Whether a request without a `stream` field gets a stream. */
  readonly streamsByDefault: boolean;
  /** The text of a parsed plain answer; undefined when it is not a completion. */
  answerText(json: Record<string, any>): string | undefined;
  hasToolCalls(json: Record<string, any>): boolean;
  /** The API's own refusal field is set. */
  refused(json: Record<string, any>): boolean;
  /** Clamps the output-token cap (adding it when absent) and sets the temperature, in place. */
  limitOutput(json: Record<string, any>, maxTokens: number, temperature: number): void;
  /** A plain answer with `text`, in this API's success shape. */
  composeAnswer(model: string, text: string, usage: TokenUsage): string;
  /** A stream with `pieces` of text, in this API's success shape and framing. */
  composeStream(model: string, pieces: string[], usage: TokenUsage): ComposedStream;
  readonly streamContentType: string;
}
