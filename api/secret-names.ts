/**
 * What Kubernetes takes as a Secret's name and as a key of its data, as the
 * patterns the schema gives every secretRef (so the CRD refuses a name no
 * Secret can have before a controller asks for it) and the validator names
 * in its messages. Both are RE2 as well as ECMAScript: the API server reads
 * them with Go's regexp, Ajv with JavaScript's.
 */

/** A DNS subdomain (RFC 1123), as a Secret's name must be: dot-separated parts of a-z, 0-9 and -, each starting and ending with a letter or digit. */
export const SECRET_NAME_PATTERN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$';

/**
 * A key of a Secret's data: letters, digits, -, _ and ., except `.` and `..` and what starts with `..`
 * (Kubernetes refuses those too: mounted, they would name a directory). Written without a lookahead,
 * which RE2 lacks: an optional dot, then a character that is not one.
 */
export const SECRET_KEY_PATTERN = '^\\.?[-_a-zA-Z0-9][-._a-zA-Z0-9]*$';

/** The longest name, and the longest key, Kubernetes takes. */
export const MAX_SECRET_NAME = 253;
