/**
 * The short top-level members of a JSON object, read from its bytes without
 * parsing the rest: for a request body too large to parse whole, whose long
 * members (messages, input, tools) are skipped over and never built, while
 * the short ones (model, stream, max_tokens, stream_options) are parsed as
 * JSON.parse would (a later duplicate wins). One pass, no recursion: nesting
 * is counted, strings are skipped with indexOf, so any body is read in
 * linear time.
 */

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const COMMA = 0x2c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;

const isSpace = (c: number | undefined) => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;

function skipSpace(b: Buffer, i: number): number {
  while (isSpace(b[i])) i++;
  return i;
}

/** The index after the string that opens at `i`, or -1 when it never closes. */
function afterString(b: Buffer, i: number): number {
  for (let from = i + 1; ; ) {
    const quote = b.indexOf(QUOTE, from);
    if (quote < 0) return -1;
    let escapes = 0;
    while (b[quote - 1 - escapes] === BACKSLASH) escapes++;
    if (escapes % 2 === 0) return quote + 1;
    from = quote + 1;
  }
}

/** The index after the value that starts at `i`, or -1 when it never ends. */
function afterValue(b: Buffer, i: number): number {
  const first = b[i];
  if (first === QUOTE) return afterString(b, i);
  if (first === OPEN_BRACE || first === OPEN_BRACKET) {
    let depth = 0;
    for (let j = i; j < b.length; j++) {
      const c = b[j];
      if (c === QUOTE) {
        j = afterString(b, j) - 1;
        if (j < 0) return -1;
      } else if (c === OPEN_BRACE || c === OPEN_BRACKET) depth++;
      else if ((c === CLOSE_BRACE || c === CLOSE_BRACKET) && --depth === 0) return j + 1;
    }
    return -1;
  }
  let j = i;
  while (j < b.length && b[j] !== COMMA && b[j] !== CLOSE_BRACE && !isSpace(b[j])) j++;
  return j;
}

/**
 * The members of the JSON object in `body` whose values take at most `maxValueBytes`, parsed; undefined
 * when `body` is not a JSON object as far as this reading can tell (a short value that does not parse,
 * a missing colon, an unclosed string or object).
 */
export function shortMembers(body: Buffer, maxValueBytes: number): Record<string, unknown> | undefined {
  const members: Record<string, unknown> = Object.create(null) as Record<string, unknown>; // "__proto__" is a key like any other
  let i = skipSpace(body, 0);
  if (body[i] !== OPEN_BRACE) return undefined;
  i = skipSpace(body, i + 1);
  if (body[i] === CLOSE_BRACE) return members;
  for (;;) {
    if (body[i] !== QUOTE) return undefined;
    const keyEnd = afterString(body, i);
    if (keyEnd < 0) return undefined;
    let key: unknown;
    try {
      key = JSON.parse(body.toString('utf8', i, keyEnd));
    } catch {
      return undefined;
    }
    i = skipSpace(body, keyEnd);
    if (body[i] !== COLON) return undefined;
    const start = skipSpace(body, i + 1);
    const end = afterValue(body, start);
    if (end < 0 || end === start) return undefined;
    if (end - start <= maxValueBytes) {
      try {
        members[key as string] = JSON.parse(body.toString('utf8', start, end));
      } catch {
        return undefined;
      }
    } else delete members[key as string]; // a later duplicate wins, also over a short earlier one
    i = skipSpace(body, end);
    if (body[i] === CLOSE_BRACE) return members;
    if (body[i] !== COMMA) return undefined;
    i = skipSpace(body, i + 1);
  }
}
