/**
 * Regenerate-and-verify, the state machine: the text a broken stream already
 * delivered is matched against the text of a new attempt's stream, piece by
 * piece. Until all of it has matched, the new text is held back; a piece that
 * disagrees means the new answer diverged; once it has all matched, what
 * follows is the continuation to relay (the first piece may be cut: only its
 * part past the delivered text is new).
 */
export type Verdict = { kind: 'hold' } | { kind: 'diverged' } | { kind: 'emit'; text: string };

export class StreamVerifier {
  private matched = 0;

  constructor(private readonly delivered: string) {}

  /** Whether everything delivered has been matched. */
  get caughtUp(): boolean {
    return this.matched >= this.delivered.length;
  }

  /** The next piece of the new stream's text. */
  push(piece: string): Verdict {
    if (this.caughtUp) return { kind: 'emit', text: piece };
    const expected = this.delivered.slice(this.matched, this.matched + piece.length);
    if (!piece.startsWith(expected)) return { kind: 'diverged' };
    this.matched += expected.length;
    const beyond = piece.slice(expected.length);
    return beyond === '' ? { kind: 'hold' } : { kind: 'emit', text: beyond };
  }
}
