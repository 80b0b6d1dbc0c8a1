/**
 * Text from a file or a peer made safe to print on a terminal: every control
 * character (C0, DEL and C1: what ends a line, moves the cursor or colours the
 * screen, ESC and CSI among them) and every bidirectional-text control (which
 * reorders what is shown) is written as an escape (\n, \x1b, \u202e), so the
 * text shows as what it is and one line stays one line.
 */

const UNPRINTABLE = /[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

export function printable(text: string): string {
  return text.replace(UNPRINTABLE, (c) => {
    const code = c.charCodeAt(0);
    return NAMED[c] ?? (code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`);
  });
}
