/**
 * The tokens a request is expected to use before its answer says: its input
 * at ~4 bytes a token, and its output cap (max_tokens). What the rate limit
 * and the token budget reserve up front, and correct once the usage is known.
 */
import type { TokenUsage } from './dialects/dialect.js';
import type { ProxyRequest } from './handler.js';

export const expectedUsage = (req: ProxyRequest): TokenUsage => ({ input: Math.ceil((req.body?.length ?? 0) / 4), output: req.maxTokens ?? 0 });
