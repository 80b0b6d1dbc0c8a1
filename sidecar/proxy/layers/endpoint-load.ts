/**
 * Counts the attempts in flight on each endpoint (streams until they end),
 * which least-outstanding balancing reads. The count is taken and given back
 * here, once.
 */
import type { AttemptRequest, Layer } from '../handler.js';
import { holding } from '../holding.js';

export const endpointLoad: Layer<AttemptRequest> = (inner) => (req, ctx) => {
  const { endpoint } = req;
  endpoint.outstanding++;
  return holding(
    () => inner(req, ctx),
    () => endpoint.outstanding--,
  );
};
