/**
 * An upstream whose API the policy does not name: errors and composed answers
 * in OpenAI's shape (the most common), every known usage field and recogniser,
 * answers read in any known shape, and no terminator to insist on.
 */
import { anthropic } from './anthropic.js';
import type { Dialect, EventReading, Recogniser } from './types.js';
import { ollamaChat, ollamaGenerate } from './ollama.js';
import { OPENAI_RECOGNISERS, openai } from './openai.js';
import { answerUsageReader } from './shared.js';

const NOTHING: EventReading = {};

const known = [openai, anthropic, ollamaChat, ollamaGenerate];
const recognisers: Recogniser[] = [...OPENAI_RECOGNISERS];
for (const r of [...anthropic.recognisers, ...ollamaChat.recognisers]) if (!recognisers.some((k) => k.pattern.source === r.pattern.source)) recognisers.push(r);

export const generic: Dialect = {
  ...openai,
  name: 'generic',
  // Events of an API it does not know are relayed as they are: each counts as content, none can be vouched for, and no end is insisted on.
  readEvent: (_event, data) => (data === '' ? NOTHING : { content: [{ channel: 'opaque', text: data }], unverifiable: true }),
  terminator: undefined,
  endsWithTerminator: false,
  withContent: (_event, data) => data,
  continueWith: () => undefined,
  askUsage: undefined, // an API it does not know is sent what the app sent
  withoutAskedUsage: undefined,
  answerUsage: answerUsageReader(['prompt_tokens', 'input_tokens', 'prompt_eval_count'], ['completion_tokens', 'output_tokens', 'eval_count']),
  recognisers,
  answerText: (json) => known.map((d) => d.answerText(json)).find((text) => text !== undefined),
  hasToolCalls: (json) => known.some((d) => d.hasToolCalls(json)),
  refused: (json) => openai.refused(json),
};
