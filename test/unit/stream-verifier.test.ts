/**
 * The seams of mid-stream recovery (resilience/stream-verifier.ts), piece by
 * piece: what the app was sent (DeliveredContent), a regenerated stream that
 * must repeat it exactly, channel by channel, before anything of it is new
 * (RegenerationSeam), and a continuation that must bring new text, never the
 * answer again nor its last words (ContinuationSeam), fuzzed over adversarial
 * continuations.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ContinuationSeam, OVERLAP_CHARS } from '../../sidecar/resilience/continuation-seam.js';
import { DeliveredContent, MAX_RECOVERABLE_CHARS, RegenerationSeam, type ContentPiece, type PieceVerdict, type Seam } from '../../sidecar/resilience/stream-verifier.js';
import { CANONICAL } from '../support/model-upstream.js';

/** Cuts `text` at `cuts` (any numbers, taken modulo its length) into non-empty pieces, never between positions `cuttable` refuses. */
function cutText(text: string, cuts: number[]): string[] {
  const at = [...new Set(cuts.map((c) => c % (text.length + 1)))].filter((c) => c > 0 && c < text.length).sort((a, b) => a - b);
  const pieces: string[] = [];
  let from = 0;
  for (const c of [...at, text.length]) {
    if (c > from) pieces.push(text.slice(from, c));
    from = c;
  }
  return pieces;
}

/** Runs of one channel: consecutive pieces of a channel joined (how a stream's content reads whatever its cuts). */
function runs(pieces: readonly ContentPiece[]): ContentPiece[] {
  const out: ContentPiece[] = [];
  for (const { channel, text } of pieces) {
    const last = out.at(-1);
    if (last?.channel === channel) last.text += text;
    else out.push({ channel, text });
  }
  return out;
}

/** The same content cut into other pieces: each run of a channel cut anywhere. */
function recut(pieces: readonly ContentPiece[], cuts: number[]): ContentPiece[] {
  return runs(pieces).flatMap(({ channel, text }, i) => cutText(text, cuts.map((c) => c + i * 7)).map((t) => ({ channel, text: t })));
}

function deliveredOf(pieces: readonly ContentPiece[]): DeliveredContent {
  const delivered = new DeliveredContent();
  for (const piece of pieces) delivered.add(piece);
  return delivered;
}

/** Pushes `pieces` through `seam` up to the first divergence; the verdicts, and whether the seam was decided after each. */
function pushAll(seam: Seam, pieces: readonly ContentPiece[]): { verdicts: PieceVerdict[]; decidedAfter: boolean[] } {
  const verdicts: PieceVerdict[] = [];
  const decidedAfter: boolean[] = [];
  for (const piece of pieces) {
    const verdict = seam.push(piece);
    verdicts.push(verdict);
    decidedAfter.push(seam.decided);
    if (verdict.kind === 'diverged') break;
  }
  return { verdicts, decidedAfter };
}

const kept = (verdicts: PieceVerdict[]) => verdicts.flatMap((v) => (v.kind === 'keep' ? [v.text] : []));

const channel = fc.constantFrom('text', 'reasoning', 'refusal', 'tool0.name', 'tool0.args', 'tool1.args', 'block1.text', 'choice1.text');
/** Text of any kind, NULs and the character that escapes them often among it (they must never pass for a channel's mark). */
const text = fc.oneof(fc.string({ minLength: 1, maxLength: 12 }), fc.string({ minLength: 1, maxLength: 8, unit: fc.constantFrom('a', 'b', ' ', '\u0000', '\u0001', 'é', '😀') }));
const piece = fc.record({ channel, text });
const pieces = (minLength: number) => fc.array(piece, { minLength, maxLength: 8 });

describe('DeliveredContent', () => {
  it('keeps the text and its channel while all that was delivered is text of one channel', () => {
    assert.deepEqual(deliveredOf([{ channel: 'block0.text', text: 'Hello' }, { channel: 'block0.text', text: ' world' }]).text, { text: 'Hello world', channel: 'block0.text' });
    assert.equal(deliveredOf([{ channel: 'text', text: 'Hi' }, { channel: 'tool0.name', text: 'get' }]).text, undefined, 'a tool call');
    assert.equal(deliveredOf([{ channel: 'reasoning', text: 'Hmm' }]).text, undefined, 'reasoning is not the text');
    assert.equal(deliveredOf([{ channel: 'text', text: 'a' }, { channel: 'choice1.text', text: 'b' }]).text, undefined, 'two choices');
    assert.equal(new DeliveredContent().empty, true);
    assert.equal(new DeliveredContent().text, undefined);
  });

  it("keeps the block marks sent after the last content (a block's stop, the next one's start), and no text to continue while there are any", () => {
    const delivered = deliveredOf([{ channel: 'block0.text', text: 'Let me check.' }]);
    delivered.mark('stop:0');
    delivered.mark('start:1');
    assert.deepEqual(delivered.trailing, ['stop:0', 'start:1']);
    assert.equal(delivered.text, undefined, 'the text is closed: a continuation cannot carry the block that follows');
    delivered.add({ channel: 'block1.text', text: 'More' });
    assert.deepEqual(delivered.trailing, [], 'content after them: the marks are inside what a new stream repeats');
    const many = deliveredOf([{ channel: 'text', text: 'a' }]);
    for (let i = 0; i < 64; i++) many.mark(`stop:${i}`);
    assert.equal(many.overflowed, false);
    many.mark('stop:64');
    assert.equal(many.overflowed, true, 'past 64 marks the copy is given up');
  });

  it('drops its copy past MAX_RECOVERABLE_CHARS: the stream can no longer be recovered', () => {
    const delivered = deliveredOf([{ channel: 'text', text: 'x'.repeat(MAX_RECOVERABLE_CHARS - 100) }]);
    assert.equal(delivered.overflowed, false);
    delivered.add({ channel: 'text', text: 'y'.repeat(101) });
    assert.equal(delivered.overflowed, true);
    assert.equal(delivered.all, '');
    assert.equal(delivered.text, undefined);
    delivered.add({ channel: 'text', text: 'z' });
    assert.equal(delivered.all, '', 'nothing is kept after it');
  });
});

describe('RegenerationSeam (regenerate and verify)', () => {
  it('drops the exact repeat of what was delivered and keeps exactly what follows, however both streams cut their pieces (property)', () => {
    fc.assert(
      fc.property(pieces(1), pieces(0), fc.array(fc.nat(), { maxLength: 12 }), (delivered, more, cuts) => {
        const seam = new RegenerationSeam(deliveredOf(delivered).all);
        const stream = recut([...delivered, ...more], cuts);
        const { verdicts, decidedAfter } = pushAll(seam, stream);
        assert.ok(!verdicts.some((v) => v.kind === 'diverged'), 'a repeat never diverges');
        const keptPieces = stream.flatMap((p, i) => (verdicts[i]!.kind === 'keep' ? [{ channel: p.channel, text: (verdicts[i] as { text: string }).text }] : []));
        assert.deepEqual(runs(keptPieces), runs(more), 'what is kept is what follows, channel by channel');
        // Nothing is new until the repeat is over: the seam decides at the first kept piece, not before.
        const first = verdicts.findIndex((v) => v.kind === 'keep');
        decidedAfter.forEach((decided, i) => assert.equal(decided, first >= 0 && i >= first));
        assert.equal(seam.caughtUp, true);
        assert.equal(seam.complete(), undefined);
      }),
      { numRuns: 1000 },
    );
  });

  it('diverges, before it keeps anything, at a difference anywhere in what was delivered: a character, a channel, a piece missing or added (property)', () => {
    const change = fc.oneof(
      fc.record({ kind: fc.constant('char' as const), at: fc.nat(), char: fc.constantFrom('a', 'z', ' ', '\u0000', '\u0001', 'É') }),
      fc.record({ kind: fc.constant('channel' as const), at: fc.nat(), channel }),
      fc.record({ kind: fc.constant('drop' as const), at: fc.nat() }),
      fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), piece }),
    );
    fc.assert(
      fc.property(pieces(1), change, pieces(0), fc.array(fc.nat(), { maxLength: 12 }), (delivered, c, more, cuts) => {
        const changed = delivered.map((p) => ({ ...p }));
        const i = c.at % changed.length;
        const target = changed[i]!;
        if (c.kind === 'char') {
          const at = c.at % target.text.length;
          target.text = target.text.slice(0, at) + c.char + target.text.slice(at + 1);
        } else if (c.kind === 'channel') target.channel = c.channel;
        else if (c.kind === 'drop') changed.splice(i, 1);
        else changed.splice(i, 0, c.piece);
        const all = deliveredOf(delivered).all;
        // The new stream does not repeat what was delivered (a change that made no difference, or that `more` undid, is no divergence).
        fc.pre(!deliveredOf([...changed, ...more]).all.startsWith(all));
        const seam = new RegenerationSeam(all);
        const { verdicts } = pushAll(seam, recut([...changed, ...more], cuts));
        assert.ok(!verdicts.some((v) => v.kind === 'keep'), 'nothing of a new stream that differs is kept');
        assert.equal(seam.decided, false);
        if (verdicts.at(-1)?.kind !== 'diverged') assert.match(seam.complete() ?? '', /ended before it had repeated/, 'a stream that stops short of it cannot stand');
      }),
      { numRuns: 1000 },
    );
  });

  it('follows channel changes: reasoning, then text, then a tool call, each taken up where it stood', () => {
    const delivered = deliveredOf([
      { channel: 'reasoning', text: 'Think' },
      { channel: 'reasoning', text: 'ing.' },
      { channel: 'text', text: 'Let me ' },
      { channel: 'text', text: 'look.' },
      { channel: 'tool0.name', text: 'search' },
      { channel: 'tool0.args', text: '{"q":' },
    ]).all;
    const seam = new RegenerationSeam(delivered);
    const verdicts = [
      { channel: 'reasoning', text: 'Thinking.' },
      { channel: 'text', text: 'Let' },
      { channel: 'text', text: ' me look.' },
      { channel: 'tool0.name', text: 'search' },
      { channel: 'tool0.args', text: '{"q":"x' },
      { channel: 'tool0.args', text: '"}' },
    ].map((p) => seam.push(p));
    assert.deepEqual(verdicts, [{ kind: 'drop' }, { kind: 'drop' }, { kind: 'drop' }, { kind: 'drop' }, { kind: 'keep', text: '"x' }, { kind: 'keep', text: '"}' }]);
    assert.equal(seam.decided, true);
  });

  it('diverges when the same text comes on another channel, or the channels are cut at another place', () => {
    const delivered = deliveredOf([{ channel: 'reasoning', text: 'ab' }, { channel: 'text', text: 'cd' }]).all;
    for (const stream of [
      [{ channel: 'text', text: 'abcd' }],
      [{ channel: 'reasoning', text: 'abc' }, { channel: 'text', text: 'd' }],
      [{ channel: 'reasoning', text: 'a' }, { channel: 'text', text: 'bcd' }],
      [{ channel: 'reasoning', text: 'ab' }, { channel: 'refusal', text: 'cd' }],
      [{ channel: 'reasoning', text: 'ab' }, { channel: 'choice1.text', text: 'cd' }],
    ]) {
      const { verdicts } = pushAll(new RegenerationSeam(delivered), stream);
      assert.equal(verdicts.at(-1)!.kind, 'diverged', JSON.stringify(stream));
      assert.ok(!verdicts.some((v) => v.kind === 'keep'));
    }
  });

  it('takes no text for a channel mark, however its NULs are placed (property)', () => {
    // Text that spells what follows the first mark (the other channels' marks included) on the first channel is not that content.
    fc.assert(
      fc.property(pieces(2), fc.array(fc.nat(), { maxLength: 8 }), fc.string(), (delivered, cuts, more) => {
        const first = delivered[0]!.channel;
        fc.pre(delivered.some((p) => p.channel !== first));
        const all = deliveredOf(delivered).all;
        const spelled = all.slice(`\u0000${first}\u0000`.length) + more;
        const seam = new RegenerationSeam(all);
        const { verdicts } = pushAll(seam, cutText(spelled, cuts).map((t) => ({ channel: first, text: t })));
        assert.ok(!verdicts.some((v) => v.kind === 'keep'), JSON.stringify(spelled));
        if (verdicts.at(-1)?.kind !== 'diverged') assert.ok(seam.complete() !== undefined);
      }),
      { numRuns: 500 },
    );
    // And text that holds a NUL is taken up like any other, also when a piece ends inside what escapes it.
    const seam = new RegenerationSeam(deliveredOf([{ channel: 'text', text: 'a\u0000' }]).all);
    assert.deepEqual(seam.push({ channel: 'text', text: 'a' }), { kind: 'drop' });
    assert.deepEqual(seam.push({ channel: 'text', text: '\u0000\u0000b' }), { kind: 'keep', text: '\u0000b' });
    const marked = new RegenerationSeam(deliveredOf([{ channel: 'text', text: 'a\u0000reasoning\u0000b' }]).all);
    assert.equal(pushAll(marked, [{ channel: 'text', text: 'a' }, { channel: 'reasoning', text: 'b' }]).verdicts.at(-1)!.kind, 'diverged');
  });

  it('repeats the block marks the app was sent after the content before anything new, and passes the ones that follow', () => {
    const delivered = deliveredOf([{ channel: 'block0.text', text: 'Done.' }]).all;
    const seam = new RegenerationSeam(delivered, ['stop:0']);
    assert.equal(seam.structure('start:0'), 'drop', 'before the catch-up, marks repeat what the app has');
    assert.deepEqual(seam.push({ channel: 'block0.text', text: 'Done.' }), { kind: 'drop' });
    assert.equal(seam.caughtUp, true);
    assert.equal(seam.complete(), "a new attempt's content blocks differ from those already sent", 'the stop the app has is still to come');
    assert.equal(seam.structure('stop:0'), 'drop');
    assert.equal(seam.structure('start:1'), 'pass');
    assert.deepEqual(seam.push({ channel: 'block1.tool', text: 'search' }), { kind: 'keep', text: 'search' });
    assert.equal(seam.decided, true);
    assert.equal(seam.complete(), undefined);
  });

  it('diverges when the new stream goes on with a block the app has seen closed, or closes another one', () => {
    const delivered = deliveredOf([{ channel: 'block0.text', text: 'Done.' }]).all;
    const goesOn = new RegenerationSeam(delivered, ['stop:0']);
    goesOn.push({ channel: 'block0.text', text: 'Done.' });
    assert.equal(goesOn.push({ channel: 'block0.text', text: ' More.' }).kind, 'diverged');
    const other = new RegenerationSeam(delivered, ['stop:0']);
    other.push({ channel: 'block0.text', text: 'Done.' });
    assert.equal(other.structure('stop:1'), 'diverged');
  });

  it('cannot stand when the new stream ends before it repeated what was delivered', () => {
    const seam = new RegenerationSeam(deliveredOf([{ channel: 'text', text: 'Hello, world' }]).all);
    assert.deepEqual(seam.push({ channel: 'text', text: 'Hello' }), { kind: 'drop' });
    assert.equal(seam.caughtUp, false);
    assert.match(seam.complete()!, /ended before it had repeated the content already sent/);
  });
});

describe('ContinuationSeam', () => {
  /** Canonical answers a continuation takes up: the model upstream's tokens, and natural sentences (accents, punctuation, paragraphs). */
  const ANSWERS = [
    CANONICAL,
    'The quick brown fox jumps over the lazy dog. Then it runs into the forest, where nobody can see it anymore.',
    'Le café est ouvert depuis sept heures; la naïve serveuse apporte un croissant à chaque client qui entre.',
    'Resilience is not about avoiding failure.\n\nIt is about recovering quickly: retry, fall back, and continue the answer where it stopped.',
    // Words that begin with the word before them: a continuation may start like the last word delivered and still be new.
    'It was then the theatre opened its doors, and there they went in, one by one.',
  ];

  const FULLWIDTH_OFFSET = 0xff01 - 0x21;
  /** `text` in another form a model may give the same words in: other whitespace, Unicode's decomposed or fullwidth forms, other case, invisible characters. */
  const variant = fc.oneof(
    fc.constant((t: string) => t),
    fc.array(fc.constantFrom(' ', '  ', '\n', '\n\n', '\t', '\u00a0', '\u3000', ' \n'), { minLength: 1, maxLength: 6 }).map((spaces) => (t: string) => {
      let i = 0;
      return t.replace(/\s+/g, () => spaces[i++ % spaces.length]!);
    }),
    fc.constant((t: string) => t.normalize('NFKD')),
    fc.constant((t: string) => t.replace(/[!-~]/g, (c) => String.fromCharCode(c.charCodeAt(0) + FULLWIDTH_OFFSET)).replaceAll(' ', '\u3000')),
    fc.constant((t: string) => t.toUpperCase()),
    fc.constantFrom('\u200b', '\u00ad', '\u200d', '\u2060').map((invisible) => (t: string) => t.replace(/(\p{L})(?=\p{L})/gu, `$1${invisible}`)),
  );

  /** A delivered text D (a prefix of an answer, with something in it and something after it), and how much of it the request carried. */
  const setting = fc
    .record({ answer: fc.constantFrom(...ANSWERS), at: fc.nat(), anthropic: fc.boolean() })
    .map(({ answer, at, anthropic }) => {
      const k = 1 + (at % (answer.length - 1));
      const delivered = answer.slice(0, k);
      // Anthropic's prefill cannot end in whitespace: the request carries D without it, and the continuation brings it first.
      return { answer, delivered, rest: answer.slice(k), carried: anthropic ? delivered.trimEnd().length : delivered.length };
    })
    .filter(({ delivered, rest }) => delivered.trim() !== '' && rest.trim() !== '');

  const words = (t: string) => t.trim().split(/\s+/);

  /** Runs one continuation's text through a seam; the stream's pieces on the text channel. */
  const run = (s: { delivered: string; carried: number }, stream: string, cuts: number[]) => {
    const seam = new ContinuationSeam(s.delivered, s.carried, 'text');
    return { seam, ...pushAll(seam, cutText(stream, cuts).map((t) => ({ channel: 'text', text: t }))) };
  };

  it('keeps a genuine continuation whole, and never judges it diverged (property)', () => {
    fc.assert(
      fc.property(setting, fc.array(fc.nat(), { maxLength: 15 }), (s, cuts) => {
        // The stream the model gives after the carried text: what the request did not carry of D, then the rest of the answer.
        const { seam, verdicts } = run(s, s.delivered.slice(s.carried) + s.rest, cuts);
        assert.ok(!verdicts.some((v) => v.kind === 'diverged'), `${JSON.stringify(s.delivered)} + ${JSON.stringify(s.rest)}: ${JSON.stringify(verdicts.at(-1))}`);
        assert.equal(kept(verdicts).join(''), s.rest, 'the continuation is kept whole, and only it');
        // And it is told from a repeat as soon as its words do: by its third word at the latest (the app is not kept waiting for all of it).
        if (words(s.rest).length >= 3) assert.equal(seam.decided, true, `${JSON.stringify(s.delivered)} + ${JSON.stringify(s.rest)}: not yet decided`);
        assert.equal(seam.complete(), undefined);
      }),
      { numRuns: 2000 },
    );
  });

  it('never takes a restart, an overlap or an empty continuation for new text (property)', () => {
    const leading = fc.constantFrom('', ' ', '\n');
    const tail = fc.constantFrom('', ' and so on.', ', then more', '. Next,', '\n\nAgain:');
    const repeat = fc.oneof(
      // A restart of D (as a model that ignores the prefill gives), in another form perhaps, alone or followed by the rest of the answer.
      fc.record({ kind: fc.constant('restart'), leading, form: variant, more: fc.boolean() }).map(({ leading, form, more }) => (s: { delivered: string; rest: string }) => leading + form(s.delivered) + (more ? s.rest : '')),
      // The last 1..n words of D again, then the end, or more after a boundary.
      fc.record({ kind: fc.constant('overlap'), leading, n: fc.integer({ min: 1, max: 8 }), form: variant, tail, more: fc.boolean() }).map(
        ({ leading, n, form, tail, more }) =>
          (s: { delivered: string; rest: string }) =>
            leading + form(words(s.delivered).slice(-n).join(' ')) + (more ? ' ' + s.rest.trimStart() : tail),
      ),
      // A restart that begins with the last word delivered.
      fc.record({ kind: fc.constant('last word'), leading, sep: fc.constantFrom(' ', '. ', ', ', '\n'), form: variant }).map(
        ({ leading, sep, form }) =>
          (s: { delivered: string; rest: string }) =>
            leading + words(s.delivered).at(-1)! + sep + form(s.delivered + s.rest),
      ),
      // Nothing, or only whitespace, after what the request did not carry.
      fc.constantFrom('', ' ', '\n\n').map((space) => (s: { delivered: string; carried: number }) => s.delivered.slice(s.carried) + space),
    );
    fc.assert(
      fc.property(setting, repeat, fc.array(fc.nat(), { maxLength: 15 }), (s, make, cuts) => {
        const stream = make(s);
        const { seam, verdicts, decidedAfter } = run(s, stream, cuts);
        const what = `${JSON.stringify(s.delivered)} then ${JSON.stringify(stream)}`;
        decidedAfter.forEach((decided, i) => assert.ok(verdicts[i]!.kind === 'diverged' || !decided, `${what}: decided new at piece ${i}`));
        if (verdicts.at(-1)?.kind !== 'diverged') assert.ok(seam.complete() !== undefined, `${what}: complete() let it stand`);
      }),
      { numRuns: 3000 },
    );
  });

  it('requires what the request did not carry to come first, exactly, then judges the rest', () => {
    const seam = new ContinuationSeam('one two \n', 'one two'.length, 'text');
    assert.deepEqual(seam.push({ channel: 'text', text: ' ' }), { kind: 'drop' });
    assert.deepEqual(seam.push({ channel: 'text', text: '\nthr' }), { kind: 'keep', text: 'thr' });
    assert.equal(seam.caughtUp, true);
    assert.equal(seam.decided, true, '"thr" is neither the answer again nor its last words');
    const contradicting = new ContinuationSeam('one two \n', 'one two'.length, 'text');
    assert.equal(contradicting.push({ channel: 'text', text: '\n three' }).kind, 'diverged');
  });

  it('holds text that could still be a restart or an overlap until it tells', () => {
    const seam = new ContinuationSeam('The cat sat on the mat.', 23, 'text');
    assert.deepEqual(seam.push({ channel: 'text', text: ' The' }), { kind: 'keep', text: ' The' });
    assert.equal(seam.decided, false, 'it could be the answer again');
    assert.deepEqual(seam.push({ channel: 'text', text: ' end.' }), { kind: 'keep', text: ' end.' });
    assert.equal(seam.decided, true);
    const overlap = new ContinuationSeam('The cat sat on the mat.', 23, 'text');
    assert.equal(overlap.push({ channel: 'text', text: ' the ma' }).kind, 'keep');
    assert.equal(overlap.decided, false);
    assert.deepEqual(overlap.push({ channel: 'text', text: 't. And' }), { kind: 'diverged', why: 'a continuation repeated the text already sent' });
  });

  it('diverges on content of another channel before the text went on (a tool call, reasoning)', () => {
    const seam = new ContinuationSeam('Hello', 5, 'block0.text');
    assert.match((seam.push({ channel: 'block1.tool', text: 'search' }) as { why: string }).why, /gave tool before it continued the text/);
    const after = new ContinuationSeam('Hello', 5, 'block0.text');
    assert.equal(after.push({ channel: 'block0.text', text: ' world' }).kind, 'keep');
    assert.deepEqual(after.push({ channel: 'block1.tool', text: 'search' }), { kind: 'keep', text: 'search' }, 'once decided, the stream goes on');
  });

  it("leaves out a continuation's block marks before its text (they open the block the app has open), and passes them after", () => {
    const seam: Seam = new ContinuationSeam('Hello', 5, 'block0.text');
    assert.equal(seam.structure('start:0'), 'drop');
    seam.push({ channel: 'block0.text', text: ' world' });
    assert.equal(seam.structure('stop:0'), 'pass');
    const undecided: Seam = new ContinuationSeam('The cat sat.', 12, 'block0.text');
    undecided.push({ channel: 'block0.text', text: ' The' });
    assert.equal(undecided.decided, false);
    assert.equal(undecided.structure('stop:0'), 'pass', 'held with the text it follows, until that text tells');
  });

  it('says why a continuation that ends without new text cannot stand', () => {
    assert.equal(new ContinuationSeam('Done.', 5, 'text').complete(), 'a continuation added no text');
    const restart = new ContinuationSeam('Done.', 5, 'text');
    restart.push({ channel: 'text', text: 'Done.' });
    assert.equal(restart.complete(), 'a continuation repeated the text already sent');
  });

  it('takes the last words again for a repeat also when punctuation alone, no space, follows them', () => {
    for (const overlap of [' mat\u2014and then it slept.', ' mat...and then it slept.', ' the mat,and then it slept.', ' mat.And then it slept.']) {
      const seam = new ContinuationSeam('The cat sat on the mat.', 23, 'text');
      const { verdicts } = pushAll(seam, [{ channel: 'text', text: overlap }]);
      assert.equal(verdicts.at(-1)!.kind, 'diverged', JSON.stringify(overlap));
    }
  });

  it('takes a restart in decomposed form for a repeat, also when a piece ends between a letter and its accent', () => {
    const delivered = 'Le café est ouvert.';
    const restart = delivered.normalize('NFKD') + ' Il fait beau.';
    const cut = restart.indexOf('cafe') + 'cafe'.length;
    const seam = new ContinuationSeam(delivered, delivered.length, 'text');
    const { verdicts, decidedAfter } = pushAll(seam, [{ channel: 'text', text: ' ' + restart.slice(0, cut) }, { channel: 'text', text: restart.slice(cut) }]);
    assert.deepEqual(decidedAfter, [false, false]);
    assert.equal(verdicts.at(-1)!.kind, 'diverged');
  });

  /** Asserts that a stream is never taken for new text: it diverges or cannot stand at its end, and is never decided new before. */
  const assertNotTaken = (s: { delivered: string; carried: number }, stream: string, cuts: number[]) => {
    const { seam, verdicts, decidedAfter } = run(s, stream, cuts);
    const brief = (t: string) => JSON.stringify(t.length > 160 ? `${t.slice(0, 40)}…${t.slice(-100)}` : t);
    const what = () => `${brief(s.delivered)} then ${cutText(stream, cuts).map(brief).join(' + ')}`;
    decidedAfter.forEach((decided, i) => assert.ok(verdicts[i]!.kind === 'diverged' || !decided, `${what()}: decided new at piece ${i}`));
    if (verdicts.at(-1)?.kind !== 'diverged') assert.ok(seam.complete() !== undefined, `${what()}: complete() let it stand`);
  };
  /** Ways a stream is cut into pieces: whole, a character at a time, and a few token-like cuts. */
  const CUTS = [[], Array.from({ length: 64 }, (_, i) => i + 1), [1, 4], [3, 9, 14], [2, 5, 11, 17, 23]];

  it('takes a continuation that repeats the last word delivered, cut in the middle, glued on, for a repeat (not "Hello worworld!")', () => {
    for (const [delivered, stream] of [
      ['The capital of France is Paris. The capital of Germ', 'The capital of Germany is Berlin.'],
      ['Hello wor', 'world!'],
      ['Paris is the capital of France, and Berlin the capital of Germ', 'Germany is Berlin.'],
      ['The capital of Germ', 'Germ'],
      ['Le café ouvre à sept heu', 'heures.'],
    ] as const) {
      for (const cuts of CUTS) assertNotTaken({ delivered, carried: delivered.length }, stream, cuts);
    }
  });

  it('takes a continuation that repeats two or more of the last words, the last one cut, for a repeat also when a space comes first', () => {
    const delivered = 'The capital of France is Paris. The capital of Germ';
    for (const stream of [' The capital of Germany is Berlin.', '\nof Germany is Berlin.', ' Paris. The capital of Germany', ' of Germ']) {
      for (const cuts of CUTS) assertNotTaken({ delivered, carried: delivered.length }, stream, cuts);
    }
  });

  it('pays for a word that repeats its own beginning ("pa" then "paya" for "papaya") with a regeneration, and keeps a new word after a space that begins like the last one', () => {
    // The trade-off the seam makes (see ContinuationSeam.judge): glued on, the beginning of the last word again is a repeat.
    for (const [delivered, stream] of [['She ate a pa', 'paya.'], ['I laughed: ha', 'haha!'], ['It costs 1', '11 euros.']] as const) {
      assert.equal(run({ delivered, carried: delivered.length }, stream, []).verdicts.at(-1)!.kind, 'diverged', `${delivered} + ${stream}`);
    }
    // After a space the same letters are a new word, as "theatre" after "the".
    const { seam, verdicts } = run({ delivered: 'It was then the', carried: 15 }, ' theatre opened its doors.', [5, 9]);
    assert.equal(kept(verdicts).join(''), ' theatre opened its doors.');
    assert.equal(seam.complete(), undefined);
  });

  it('looks for a repeat from the first word of the window too, when the window starts where that word does', () => {
    const window = ('begin ' + 'alpha beta gamma delta epsilon '.repeat(OVERLAP_CHARS / 16)).slice(0, OVERLAP_CHARS - 4) + ' eta';
    const delivered = 'x'.repeat(40) + ' ' + window;
    assert.equal(delivered.slice(-OVERLAP_CHARS), window);
    assertNotTaken({ delivered, carried: delivered.length }, ' ' + window + ' is next.', [100, 5000]);
  });

  it('never takes a restart from the start of the last word delivered (whole or cut) or from any earlier word start in the window for a continuation (property)', () => {
    const isWordChar = (c: string) => /[\p{L}\p{N}]/u.test(c);
    // Words of few letters, so that words often begin like others (é folds as e, B as b), and separators of all kinds.
    const word = fc.string({ minLength: 1, maxLength: 4, unit: fc.constantFrom('a', 'b', 'B', 'e', 'é', '1') });
    const separator = fc.constantFrom(' ', ', ', '. ', '\n\n', '-', ' (', '’', ': ');
    const wordy = fc.array(fc.tuple(word, separator), { minLength: 1, maxLength: 12 }).map((ws) => ws.flat().join(''));
    // Sometimes far more than the window before it, so that the window's start is where a repeat may begin.
    const padding = fc.constantFrom('', Array.from({ length: OVERLAP_CHARS / 4 }, (_, i) => `p${i}`).join(' ') + ' ', 'x'.repeat(OVERLAP_CHARS + 3));
    fc.assert(
      fc.property(
        padding,
        fc.oneof(fc.constantFrom(...ANSWERS), wordy),
        fc.nat(),
        fc.nat(),
        fc.constantFrom('', ' ', '\n'),
        fc.constantFrom('', ' and so on.', 'x'),
        fc.boolean(),
        fc.array(fc.nat(), { maxLength: 10 }),
        (pad, body, at, pick, leading, more, anthropic, cuts) => {
          const answer = pad + body;
          const p = pad.length + 1 + (at % Math.max(1, body.length - 1));
          fc.pre(p < answer.length);
          const delivered = answer.slice(0, p);
          // Where a word starts in what was delivered (in the window, or at its very start: a restart of the whole).
          const starts = [...delivered.matchAll(/(?<![\p{L}\p{N}])[\p{L}\p{N}]/gu)].map((m) => m.index).filter((i) => i === 0 || i >= p - OVERLAP_CHARS);
          fc.pre(starts.length > 0);
          const from = starts[pick % starts.length]!;
          // After a space, the start of the last word when it was cut is the one thing the seam cannot tell from a new word ("the" then " theatre"): that restart comes glued on.
          const cutWord = isWordChar(answer[p - 1]!) && isWordChar(answer[p] ?? '');
          const lead = from === starts.at(-1) && cutWord ? '' : leading;
          const carried = anthropic ? delivered.trimEnd().length : delivered.length;
          const stream = delivered.slice(carried) + lead + answer.slice(from) + more;
          assertNotTaken({ delivered, carried }, stream, cuts.map((c) => c % (stream.length + 1)));
        },
      ),
      { numRuns: 1500 },
    );
  });
});
