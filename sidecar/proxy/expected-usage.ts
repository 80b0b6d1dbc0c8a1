/**
 * The tokens a request is expected to use before its answer says: its input
 * at ~4 bytes a token, and its output cap (max_tokens). What the rate limit
 * and the token budget reserve up front, and correct once the usage is known;
 * the budget also reserves UNCAPPED_OUTPUT_TOKENS for a request without a cap.
 */
import type { Dialect, TokenUsage } from './dialects/dialect.js';
import type { ProxyRequest } from './handler.js';

/** ~4 bytes (or characters) of text a token: the estimate wherever no count is reported. */
export const tokensOfText = (length: number): number => Math.ceil(length / 4);

export const expectedUsage = (req: ProxyRequest): TokenUsage => ({ input: tokensOfText(req.body?.length ?? 0), output: req.maxTokens ?? 0 });

/**
 * The output a budget reserves for a request that sets no output cap: without one, a model may answer
 * thousands of tokens, and a reservation of nothing would let any number of such requests in at once.
 * With it, a budget of N tokens has at most N / 4,096 (plus one) of them in flight, each overspending
 * only by what it answers past its reservation; an answer that uses more is charged what it used.
 * A constant, not a policy field: an app that knows its answers' length says so with max_tokens.
 */
export const UNCAPPED_OUTPUT_TOKENS = 4096;

/**
 * Whether a request at this path generates output: a path whose API takes no output cap (embeddings,
 * files, audio: the pass-through dialects) does not, and reserves none.
 */
export const generatesOutput = (dialect: Dialect): boolean => dialect.outputCapFields.length > 0;
