/**
 * A tier whose credential the sidecar does not have (the policy names a
 * Secret, or a key of one, that does not exist yet, is not labelled for
 * Breakwater, or holds no usable credential) is not called: the app's own
 * credentials are never sent in its place and no request goes out with none.
 * It answers 503 upstream_unavailable, failure `unavailable`, naming the key
 * and why (never a value), so a fallback tier whose `when` takes it serves
 * instead; once the controller sends a usable value, the next request is sent
 * with it.
 */
import { enabledWhen, localError, type Layer } from '../handler.js';

export const credential: Layer = enabledWhen((config) => config.auth?.missing !== undefined, (inner) => (req, ctx) => {
  const auth = req.upstream.config.auth;
  if (auth?.missing === undefined) return inner(req, ctx);
  return Promise.resolve(localError(req, 503, 'upstream_unavailable', `upstream ${req.upstream.config.name} has no credential yet: ${auth.missing} ${auth.problem}`, 'unavailable', 5000));
});
