/**
 * An upstream whose API the policy does not name: errors and composed answers
 * in OpenAI's shape (the most common), every known usage field and recogniser,
 * answers read in any known shape, and no terminator to insist on. Also the
 * paths of a known API whose answers are not text (embeddings, audio, files,
 * batches…): relayed untouched with transport-level resilience only.
 */
import { anthropic } from './anthropic.js';
import type { Dialect, EventReading, Recogniser } from './types.js';
import { ollamaChat, ollamaGenerate } from './ollama.js';
import { OPENAI_RECOGNISERS, openai } from './openai.js';
import { openaiResponses } from './openai-responses.js';
import { answerUsageReader, topLevelFields } from './shared.js';

const NOTHING: EventReading = {};

const known = [openai, openaiResponses, anthropic, ollamaChat, ollamaGenerate];
const recognisers: Recogniser[] = [...OPENAI_RECOGNISERS];
for (const r of [...anthropic.recognisers, ...ollamaChat.recognisers]) if (!recognisers.some((k) => k.pattern.source === r.pattern.source)) recognisers.push(r);

export const generic: Dialect = {
  ...openai,
  name: 'generic',
  // Whichever known field the body has: the cap of any family's API, JSON mode as OpenAI and Ollama ask for it.
  readRequest: (json) => {
    const read = known.map((d) => d.readRequest(json));
    return { ...topLevelFields(json), maxTokens: read.find((r) => r.maxTokens)?.maxTokens, jsonMode: read.find((r) => r.jsonMode)?.jsonMode };
  },
  outputCapFields: [...new Set(known.flatMap((d) => d.outputCapFields))],
  // Events of an API it does not know are relayed as they are: each counts as content, none can be vouched for, and no end is insisted on.
  readEvent: (_event, data) => (data === '' ? NOTHING : { content: [{ channel: 'opaque', text: data }], unverifiable: true }),
  terminator: undefined,
  endsWithTerminator: false,
  withContent: (_event, data) => data,
  continueWith: () => undefined,
  askUsage: undefined, // an API it does not know is sent what the app sent
  unaskUsage: undefined,
  withoutAskedUsage: undefined,
  answerUsage: answerUsageReader(['prompt_tokens', 'input_tokens', 'prompt_eval_count'], ['completion_tokens', 'output_tokens', 'eval_count']),
  recognisers,
  answerText: (json) => known.map((d) => d.answerText(json)).find((text) => text !== undefined),
  hasToolCalls: (json) => known.some((d) => d.hasToolCalls(json)),
  refused: (json) => openai.refused(json),
};

/**
 * A path of `family`'s API that is not a text completion (embeddings, audio, files, batches, models…):
 * relayed untouched, streams included (a streamed transcription or speech has events of its own and
 * no terminator), with transport-level resilience only: no answer is judged, no request rewritten,
 * and no tier composes an answer for it. Errors are in the family's shape. `idempotent`: the method
 * says the request can be sent twice (GET, PUT, DELETE…); a POST may create something each time.
 */
export function passThrough(family: Dialect, idempotent: boolean): Dialect {
  return {
    ...generic,
    name: `${family.name}-passthrough`,
    readRequest: (json) => topLevelFields(json),
    outputCapFields: [],
    streamsByDefault: false,
    replaysSafely: idempotent,
    errorBody: family.errorBody,
    upstreamErrorBody: family.upstreamErrorBody,
    streamError: family.streamError,
    recognisers: family.recognisers,
    answerText: () => undefined,
    hasToolCalls: () => false,
    refused: () => false,
    limitOutput: () => {},
    composeAnswer: undefined,
    composeStream: undefined,
  };
}
