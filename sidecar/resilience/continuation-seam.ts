/**
 * The seam of a continuation (stream-verifier.ts says what a seam is): the
 * request carried the delivered text as a prefill, so the part of the text
 * it did not carry (Anthropic's trailing whitespace) must come first,
 * exactly; then the continuation must bring new text, not the answer again
 * (a restart) nor a repeat of the last words delivered (an overlap). Text
 * that could still be either is held until it tells.
 */
import type { ContentPiece, PieceVerdict, Seam } from './stream-verifier.js';

/**
 * Text as the repeat check compares it: Unicode compatibility forms folded and accents dropped (so a
 * restart in another form, or cut between a letter and its combining mark, still compares), lower
 * case (the final sigma as any other, so that text cut anywhere folds as it does whole), and every
 * run of anything but letters and digits (whitespace, punctuation, invisible characters such as
 * zero-width spaces, joiners and soft hyphens) one space.
 */
const normalised = (text: string) =>
  text
    .normalize('NFKD')
    .replace(/\p{M}+/gu, '')
    .toLowerCase()
    .replaceAll('ς', 'σ')
    .replace(/[\p{Cf}]+/gu, '')
    .replace(/[^\p{L}\p{N}]+/gu, ' ');
/** How far back from the end of the delivered text a repeat of its last words is looked for. */
export const OVERLAP_CHARS = 16 * 1024;

/** Continuation: the request carried the delivered text (all but `delivered.slice(carried)`); its stream must bring new text. */
export class ContinuationSeam implements Seam {
  readonly strategy = 'continuation';
  private readonly notCarried: string;
  private matched = 0;
  /** Text past the not-carried part, held while it could still be a repeat; and the same normalised (from its first letter or digit), built piece by piece. */
  private held = '';
  private normHeld = '';
  private started = false;
  /** Whether the normalised held text is still a beginning of the whole delivered text (it could still become a restart). */
  private restartLive = true;
  /** The normalised delivered text: a continuation that begins with it is a restart. */
  private readonly whole: string;
  /** The normalised end of the delivered text, and where in it a word starts that a repeat could still begin at. */
  private readonly tail: string;
  private live: number[] = [];
  /** Where in `tail` the last word delivered starts: an overlap from an earlier start spans two words or more. */
  private readonly lastWordStart: number;
  /** The delivered text ends with a letter or digit: perhaps inside a word, which a continuation may go on with. */
  private readonly endsInWord: boolean;
  /** Whether the continuation's first letter or digit came straight after the delivered text's last, nothing between (undefined until it comes). */
  private glued: boolean | undefined;

  constructor(
    delivered: string,
    carried: number,
    private readonly channel: string,
  ) {
    this.notCarried = delivered.slice(carried);
    this.whole = normalised(delivered).trim();
    const windowStart = Math.max(0, delivered.length - OVERLAP_CHARS);
    const end = normalised(delivered.slice(windowStart));
    this.tail = end.trimEnd();
    this.endsInWord = end !== '' && end.length === this.tail.length;
    // The window's first word is one a repeat can begin at when the window starts where it does (from the very start, `whole` covers it).
    if (windowStart > 0 && /^[\p{L}\p{N}]/u.test(this.tail) && !/[\p{L}\p{N}]$/u.test(normalised(delivered.slice(Math.max(0, windowStart - 2), windowStart)))) this.live.push(0);
    for (let p = 1; p < this.tail.length; p++) if (this.tail.charCodeAt(p - 1) === 32 && this.tail.charCodeAt(p) !== 32) this.live.push(p);
    this.lastWordStart = this.live.at(-1) ?? 0;
  }

  get caughtUp(): boolean {
    return this.matched >= this.notCarried.length;
  }

  get decided(): boolean {
    return this.started;
  }

  structure(): 'drop' | 'pass' {
    // Before its first text, a continuation's marks open the block the app has open already.
    return this.started || this.held !== '' ? 'pass' : 'drop';
  }

  push(piece: ContentPiece): PieceVerdict {
    if (this.started) return { kind: 'keep', text: piece.text };
    if (piece.channel !== this.channel) return { kind: 'diverged', why: `a continuation gave ${piece.channel.replace(/^.*\./, '')} before it continued the text` };
    let text = piece.text;
    if (!this.caughtUp) {
      const expected = this.notCarried.slice(this.matched, this.matched + text.length);
      if (!text.startsWith(expected)) return { kind: 'diverged', why: 'a continuation did not continue the text already sent' };
      this.matched += expected.length;
      text = text.slice(expected.length);
      if (text === '') return { kind: 'drop' };
    }
    this.held += text;
    const verdict = this.judge(text, false);
    if (verdict === 'new') this.started = true;
    if (verdict === 'repeat') return { kind: 'diverged', why: 'a continuation repeated the text already sent' };
    return { kind: 'keep', text };
  }

  complete(): string | undefined {
    if (this.started) return undefined;
    if (this.held.trim() === '') return 'a continuation added no text';
    if (normalised(this.held).trim() === '') return undefined; // punctuation alone: nothing it could repeat
    return this.judge('', true) === 'new' ? undefined : 'a continuation repeated the text already sent';
  }

  /**
   * Whether the text held so far, with `text` added, is new, repeats the answer (the whole of it: a restart;
   * or its last words, from a word start to the end: an overlap), or cannot tell yet (it could still become
   * one). Only the added text is normalised and compared (at the offsets the held text reached), so a long
   * continuation that stays undecided costs time linear in its length.
   *
   * An overlap is text that goes through the end of the delivered text from a word start in it. Where it
   * ends tells whether it is a repeat:
   * - it spans two words or more ("of Germ" then "of Germany"): a repeat, whatever follows;
   * - it came glued on, nothing between the delivered text's last letter and its first ("Germ" then
   *   "Germany", "wor" then "world!"): a repeat, whatever follows. The app would read "GermGermany".
   *   The cost: a word whose rest begins with its own beginning, cut just there ("pa" then "paya" for
   *   "papaya", "1" then "11" for "111"), is taken for a repeat, and the answer is regenerated and verified
   *   once. That is rare, and only costs time; a repeat let through would splice the answer the app has;
   * - the last word alone, after a space or punctuation: a repeat only if the word ends where the
   *   delivered text does ("the" then " the end"). A new word that begins like it ("the" then " theatre",
   *   "he" then " helped") is common and is new. So "wor" then " world" passes too: without knowing words
   *   the seam cannot tell it from " theatre" (regeneration would be the price of every such word).
   */
  private judge(text: string, final: boolean): 'new' | 'repeat' | 'undecided' {
    const from = this.normHeld.length;
    let add = normalised(text);
    if (this.glued === undefined && add !== '') this.glued = this.endsInWord && add.charCodeAt(0) !== 32;
    // Runs fold into one space across pieces too, and nothing counts before the first letter or digit.
    if (add.charCodeAt(0) === 32 && (from === 0 || this.normHeld.charCodeAt(from - 1) === 32)) add = add.slice(1);
    const held = (this.normHeld += add);
    if (held === '') return final ? 'new' : 'undecided';
    const { whole, tail } = this;
    if (this.restartLive) {
      if (held.length >= whole.length) {
        if (whole !== '' && whole.startsWith(add.slice(0, whole.length - from), from)) return 'repeat';
        this.restartLive = false;
      } else this.restartLive = whole.startsWith(add, from);
    }
    const still: number[] = [];
    for (const p of this.live) {
      const rest = tail.length - p;
      if (held.length < rest) {
        if (tail.startsWith(add, p + from)) still.push(p);
        continue;
      }
      // The held text covers the rest of the delivered text from p: if it matches, an overlap (see above for when it is a repeat).
      if (from < rest && !tail.startsWith(add.slice(0, rest - from), p + from)) continue;
      const wordEnds = held.length > rest ? held.charCodeAt(rest) === 32 : final;
      if (wordEnds || this.glued || p < this.lastWordStart) return 'repeat';
      if (held.length === rest) still.push(p);
    }
    this.live = still;
    if (!final) return this.restartLive || still.length > 0 ? 'undecided' : 'new';
    // At the end: a beginning of the answer again is a restart however short; text that only began like the last words delivered, and stopped short of their end, is new.
    return this.restartLive ? 'repeat' : 'new';
  }
}
