/**
 * What an attempt's span reads of its stream as the events pass, for a
 * recorded span only: the model the stream names, its finish reasons and,
 * when the policy opts in, its text up to the cap. It reads the events the
 * stream was parsed into once (streams/stream-events.ts), never the bytes
 * again, and changes nothing that passes.
 */
import type { StreamBody, StreamChunk, StreamEnd } from '../proxy/streams/stream-body.js';
import { TextTap } from './content.js';
import { finishReasonsIn, modelIn } from './genai.js';

/** What a stream said of itself, filled in as it passes. */
export class StreamFacts {
  model: string | undefined;
  readonly finishReasons: string[] = [];
  readonly text: TextTap | undefined;
  private events = 0;

  constructor(maxChars: number | undefined) {
    this.text = maxChars === undefined ? undefined : new TextTap(maxChars);
  }

  read(chunk: StreamChunk): void {
    for (const event of chunk.events) {
      const { read } = event;
      // The model is named in the first events (role chunk, message_start); the finish in the events that end a choice.
      if (this.model === undefined && this.events++ < 4 && event.fields) this.model = modelIn(event.raw);
      if (read.finished?.length || read.terminal) finishReasonsIn(event.raw, this.finishReasons);
      if (this.text && read.content) for (const piece of read.content) this.text.add(piece.text);
    }
  }
}

/** `body`, with `facts` reading each chunk that passes. */
export function tapStream(body: StreamBody, facts: StreamFacts): StreamBody {
  return {
    poll(): StreamChunk | StreamEnd | undefined {
      const next = body.poll();
      if (next?.kind === 'chunk') facts.read(next);
      return next;
    },
    whenReady: (wake) => body.whenReady(wake),
    cancel: () => body.cancel(),
  };
}
