/**
 * The seam of mid-stream recovery, as state machines over content pieces
 * (a piece: a channel such as the text, the reasoning or a tool call's
 * arguments, and the text it adds). What the app was sent is kept as
 * DeliveredContent. A new stream that takes up the answer passes its pieces
 * through a seam, which says of each: it repeats what the app has (drop it),
 * it is new (keep it, or its tail), or the new stream is not the answer the
 * app has (diverged). Nothing is ever spliced:
 *
 * - RegenerationSeam (regenerate and verify): the new stream must reproduce
 *   everything delivered, channel by channel and in order, exactly; what
 *   follows is new.
 * - ContinuationSeam (continuation-seam.ts; the request carried the
 *   delivered text as a prefill): the part of the text the request did not
 *   carry (Anthropic's trailing whitespace) must come first, exactly; then
 *   the continuation must bring new text, not the answer again (a restart, as a model that ignores the
 *   prefill gives) nor a repeat of the last words delivered (an overlap),
 *   also when the text delivered ends inside a word and the repeat begins at
 *   that word's start ("Hello wor" then "world!").
 *   Text that could still be either is held until it tells (compared as
 *   `normalised` folds it); a continuation that ends while it is still a
 *   beginning of the answer, or brings nothing, fails.
 */

export interface ContentPiece {
  channel: string;
  text: string;
}

export type PieceVerdict = { kind: 'drop' } | { kind: 'keep'; text: string } | { kind: 'diverged'; why: string };

export interface Seam {
  readonly strategy: 'regenerate' | 'continuation';
  /** The next content piece of the new stream. */
  push(piece: ContentPiece): PieceVerdict;
  /** Everything of what the app has that the new stream must repeat, it has repeated. */
  readonly caughtUp: boolean;
  /** Content past what the app has has begun (and is known not to repeat it). */
  readonly decided: boolean;
  /** A non-content event that marks the answer's structure (a content block's start or stop): left out (the app has it), passed on, or a divergence. */
  structure(mark: string): 'drop' | 'pass' | 'diverged';
  /** The new stream completed: whether what it gave can stand (undefined), or why not. */
  complete(): string | undefined;
}

/** The most content a stream may have sent and still be recovered: a copy is kept to verify a new stream against. */
export const MAX_RECOVERABLE_CHARS = 1024 * 1024;

/** A channel's mark in the verification text: written where the channel changes. */
const mark = (channel: string) => `\u0000${channel}\u0000`;
/** Text with its NULs escaped, so that no text can pass for a mark. */
const escaped = (text: string) => (text.includes('\u0000') ? text.replaceAll('\u0000', '\u0000\u0001') : text);
const unescaped = (text: string) => (text.includes('\u0000') ? text.replaceAll('\u0000\u0001', '\u0000') : text);

/** Builds the verification text of a stream's content: each piece's text, with its channel's mark where the channel changes. */
class VerificationText {
  text = '';
  private channel: string | undefined;

  /** The piece as it adds to the text. */
  form(piece: ContentPiece): string {
    const form = (piece.channel === this.channel ? '' : mark(piece.channel)) + escaped(piece.text);
    this.channel = piece.channel;
    return form;
  }
}

/**
 * What the app was sent of an answer, kept to verify a new stream against and to continue from: the
 * pieces as they were read (no copy per piece), made into text only when a recovery asks for it.
 */
export class DeliveredContent {
  private pieces: ContentPiece[] = [];
  private chars = 0;
  /** The structure marks the app was sent after the last content (a block's stop, the next one's start): a new stream repeats them. */
  trailing: string[] = [];
  /** Past MAX_RECOVERABLE_CHARS the copy is dropped: the stream can no longer be recovered. */
  overflowed = false;

  /** Notes a structure mark sent after the content so far. */
  mark(mark: string): void {
    if (this.trailing.length < 64) this.trailing.push(mark);
    else this.overflowed = true;
  }

  add(piece: ContentPiece): void {
    if (this.overflowed) return;
    if (this.trailing.length > 0) this.trailing = [];
    this.pieces.push(piece);
    this.chars += piece.text.length;
    if (this.chars <= MAX_RECOVERABLE_CHARS) return;
    this.overflowed = true;
    this.pieces = [];
  }

  get empty(): boolean {
    return this.pieces.length === 0;
  }

  /** The verification text (see VerificationText). */
  get all(): string {
    const verification = new VerificationText();
    for (const piece of this.pieces) verification.text += verification.form(piece);
    return verification.text;
  }

  /** The text and its channel, when all that was delivered is text of one channel: what a continuation can carry. */
  get text(): { text: string; channel: string } | undefined {
    const channel = this.pieces[0]?.channel;
    if (channel === undefined || !channel.endsWith('text') || this.trailing.length > 0 || this.pieces.some((p) => p.channel !== channel)) return undefined;
    return { text: this.pieces.map((p) => p.text).join(''), channel };
  }
}

/** Regenerate and verify: the new stream repeats all that was delivered, then goes on. */
export class RegenerationSeam implements Seam {
  readonly strategy = 'regenerate';
  private matched = 0;
  private started = false;
  private readonly forms = new VerificationText();
  /** How many of the delivered trailing structure marks the new stream has repeated. */
  private marked = 0;

  constructor(
    private readonly delivered: string,
    private readonly trailing: readonly string[] = [],
  ) {}

  structure(mark: string): 'drop' | 'pass' | 'diverged' {
    if (!this.caughtUp) return 'drop';
    if (this.marked >= this.trailing.length) return 'pass';
    return this.trailing[this.marked++] === mark ? 'drop' : 'diverged';
  }

  get caughtUp(): boolean {
    return this.matched >= this.delivered.length;
  }

  get decided(): boolean {
    return this.started;
  }

  push(piece: ContentPiece): PieceVerdict {
    const form = this.forms.form(piece);
    if (this.caughtUp && this.marked < this.trailing.length) return { kind: 'diverged', why: 'a new attempt\'s content blocks differ from those already sent' };
    if (this.caughtUp) {
      this.started = true;
      return { kind: 'keep', text: piece.text };
    }
    const expected = this.delivered.slice(this.matched, this.matched + form.length);
    if (!form.startsWith(expected)) return { kind: 'diverged', why: 'a new attempt diverged from the content already sent' };
    this.matched += expected.length;
    const beyond = form.slice(expected.length);
    if (beyond === '') return { kind: 'drop' };
    this.started = true;
    // A mark is whole at the start of a form, and the delivered text ends with text: what is beyond is the piece's tail.
    const tail = unescaped(beyond);
    return { kind: 'keep', text: tail.length >= piece.text.length ? piece.text : tail };
  }

  complete(): string | undefined {
    if (!this.caughtUp) return 'a new attempt ended before it had repeated the content already sent';
    return this.marked < this.trailing.length ? 'a new attempt\'s content blocks differ from those already sent' : undefined;
  }
}
