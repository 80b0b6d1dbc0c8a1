/**
 * The text of an unfinished event or line, kept as the pieces it came in and
 * joined once, when it is whole: an event that arrives in many pieces costs
 * time linear in its length (a string grown piece by piece and searched each
 * time is quadratic).
 */
export class PendingText {
  private pieces: string[] = [];
  /** Characters held. */
  length = 0;

  add(text: string): void {
    if (text === '') return;
    this.pieces.push(text);
    this.length += text.length;
  }

  /** All of it, followed by `tail`; what is held starts afresh. */
  take(tail = ''): string {
    const all = this.pieces.length === 0 ? tail : this.pieces.join('') + tail;
    this.pieces = [];
    this.length = 0;
    return all;
  }
}
