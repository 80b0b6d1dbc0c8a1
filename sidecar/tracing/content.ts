/**
 * Prompts and answers in spans: only when the policy opts in
 * (tracing.content.record), and only their text, in the GenAI conventions'
 * message shape (gen_ai.input.messages, gen_ai.output.messages: role, text
 * parts). Each such attribute is at most maxChars characters as recorded
 * (the JSON, escapes, roles and the shape of many small messages or parts
 * counted, not just the text), so no prompt can make a span larger than the
 * policy allows. Nothing else of a body is kept (no other field, so no key
 * an app put in one), and headers never are.
 */
import type { ContentCaps } from '../proxy/trace-scope.js';

/** Bodies larger than this are not parsed for their prompt (it would cost the request more than the cap keeps). */
const MAX_PARSED_BYTES = 1024 * 1024;

interface Message {
  role: string;
  parts: { type: 'text'; content: string }[];
  finish_reason?: string;
}

/** Text parts of a message's content: a string, or an array of parts with text (OpenAI, Anthropic). */
function textsOf(content: unknown): string[] {
  if (typeof content === 'string') return [content];
  if (!Array.isArray(content)) return [];
  return content.flatMap((part) => (typeof part === 'string' ? [part] : typeof part?.text === 'string' ? [part.text as string] : []));
}

/** Characters JSON.stringify writes for the character at `i` of `text` (a surrogate pair: 2, together). */
function escapedLength(text: string, i: number): number {
  const c = text.charCodeAt(i);
  if (c === 0x22 || c === 0x5c || c === 0x08 || c === 0x09 || c === 0x0a || c === 0x0c || c === 0x0d) return 2;
  if (c < 0x20) return 6;
  if (c >= 0xd800 && c <= 0xdbff) {
    const next = text.charCodeAt(i + 1);
    return next >= 0xdc00 && next <= 0xdfff ? 2 : 6;
  }
  return c >= 0xdc00 && c <= 0xdfff ? 6 : 1; // a lone surrogate is escaped
}

/** The longest start of `text` whose JSON string (quotes excluded) is at most `room` characters. */
function fitting(text: string, room: number): string {
  let used = 0;
  let i = 0;
  while (i < text.length) {
    const n = escapedLength(text, i);
    if (used + n > room) break;
    used += n;
    i += n === 2 && text.charCodeAt(i) >= 0xd800 && text.charCodeAt(i) <= 0xdbff ? 2 : 1;
  }
  return i === text.length ? text : text.slice(0, i);
}

const MESSAGE_SHAPE = '{"role":,"parts":[]}'.length;
const PART_SHAPE = '{"type":"text","content":""}'.length;

/** Appends messages' text parts while the recorded JSON stays within `budget` characters. */
class Capped {
  readonly messages: Message[] = [];
  /** Characters of JSON still free: the cap, less the enclosing [] and what `reserved` keeps for later. */
  private left: number;
  constructor(maxChars: number, reserved = 0) {
    this.left = maxChars - 2 - reserved;
  }
  add(role: unknown, texts: string[]): void {
    const name = typeof role === 'string' ? role.slice(0, 32) : 'user';
    // A message costs its shape and role, and a comma after the first; each part its shape, and a comma after the first.
    let left = this.left - MESSAGE_SHAPE - JSON.stringify(name).length - (this.messages.length > 0 ? 1 : 0);
    const parts: Message['parts'] = [];
    for (const text of texts) {
      const room = left - PART_SHAPE - (parts.length > 0 ? 1 : 0);
      if (room <= 0) break;
      const kept = fitting(text, room);
      if (kept.length === 0 && text.length > 0) break;
      left = room - JSON.stringify(kept).length + 2;
      parts.push({ type: 'text', content: kept });
    }
    if (parts.length === 0) return;
    this.left = left;
    this.messages.push({ role: name, parts });
  }
}

/** The prompt of a request body (its system text, messages, input or prompt), as JSON of at most caps.maxChars characters. */
export function promptOf(body: Buffer | null, caps: ContentCaps): string | undefined {
  if (!body || body.length > MAX_PARSED_BYTES) return undefined;
  let json: any;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof json !== 'object' || json === null) return undefined;
  const out = new Capped(caps.maxChars);
  if (json.system !== undefined) out.add('system', textsOf(json.system));
  if (typeof json.instructions === 'string') out.add('system', [json.instructions]);
  const messages = Array.isArray(json.messages) ? json.messages : Array.isArray(json.input) ? json.input : undefined;
  if (messages) for (const m of messages) out.add(m?.role, textsOf(m?.content));
  else if (typeof json.input === 'string') out.add('user', [json.input]);
  else if (typeof json.prompt === 'string') out.add('user', [json.prompt]);
  return out.messages.length > 0 ? JSON.stringify(out.messages) : undefined;
}

/** An answer's text as gen_ai.output.messages, as JSON of at most caps.maxChars characters. */
export function answerOf(text: string | undefined, finishReasons: readonly string[], caps: ContentCaps): string | undefined {
  if (!text) return undefined;
  const finish = finishReasons[0]?.slice(0, 32);
  const out = new Capped(caps.maxChars, finish ? ',"finish_reason":'.length + JSON.stringify(finish).length : 0);
  out.add('assistant', [text]);
  const [message] = out.messages;
  if (!message) return undefined;
  if (finish) message.finish_reason = finish;
  return JSON.stringify(out.messages);
}

/** Collects a stream's text as it passes, up to maxChars (further text is not kept). */
export class TextTap {
  text = '';
  constructor(private readonly maxChars: number) {}
  add(piece: string): void {
    if (this.text.length < this.maxChars) this.text += piece.slice(0, this.maxChars - this.text.length);
  }
}
