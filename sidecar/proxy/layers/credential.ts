/**
 * A tier whose credential the sidecar does not have (the policy names a
 * Secret, or a key of one, that does not exist yet) is not called: the app's
 * own credentials are never sent in its place and no request goes out with
 * none. It answers 503 upstream_unavailable, failure `unavailable`, so a
 * fallback tier whose `when` takes it serves instead; once the controller
 * reads the Secret, the next request is sent with it.
 */
import { localError, type Layer } from '../handler.js';

export const credential: Layer = (inner) => (req, ctx) => {
  const missing = req.upstream.config.auth?.missing;
  if (missing === undefined) return inner(req, ctx);
  return Promise.resolve(localError(req, 503, 'upstream_unavailable', `upstream ${req.upstream.config.name} has no credential yet: ${missing} does not exist`, 'unavailable', 5000));
};
