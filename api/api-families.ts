/**
 * The API families an upstream can speak (`upstreams[].api`), and what the
 * contract says of each beyond its dialect (sidecar/proxy/dialects): the path
 * an app's SDK is given after the upstream's name, and how a recovery asks a
 * tier of that family to continue when the policy says `auto`.
 * A new family is a row here, a dialect module, and its line in the dialects'
 * registry (sidecar/proxy/dialects/dialect.ts).
 */
export const API_FAMILIES = {
  /** OpenAI and everything that speaks it (vLLM, llama.cpp, Azure, Gemini's compatibility, gateways): its SDKs expect /v1 in the base URL. OpenAI does not continue a prefill. */
  openai: { appBasePath: '/v1', continuation: 'off' },
  /** The Anthropic SDK adds /v1 itself; Messages continue a trailing assistant message. */
  anthropic: { appBasePath: '', continuation: 'prefill' },
  /** Ollama's clients take the server's root; its chat continues a trailing assistant message. */
  ollama: { appBasePath: '', continuation: 'prefill' },
  /** An API the sidecar does not know: the upstream's root, and no continuation. */
  generic: { appBasePath: '', continuation: 'off' },
} as const satisfies Record<string, { appBasePath: string; continuation: 'prefill' | 'off' }>;

export type ApiFamilyName = keyof typeof API_FAMILIES;

export const API_FAMILY_NAMES = Object.keys(API_FAMILIES) as ApiFamilyName[];
