/**
 * Whether a Secret's value can be a credential, and why not: one rule for the
 * controller (which says so in the policy's status, and sends no value it
 * knows to be unusable) and the sidecar (which does not call an upstream
 * without a usable one). A credential goes out as an HTTP header value (or a
 * Redis password), exactly as the Secret holds it, so it must be printable
 * ASCII: no line break or control character (a header injection), nothing past
 * ASCII (Node would send such characters as Latin-1 bytes, not the Secret's
 * bytes), at most 16 KiB. White space around it is dropped, as a key file's
 * trailing newline would be. A reason never quotes the value.
 */

/** The longest credential, in characters (bytes, since it is ASCII). */
export const MAX_CREDENTIAL_CHARS = 16 * 1024;

export type CredentialValue = { value: string; problem?: undefined } | { value?: undefined; problem: string };

/** `raw`, trimmed, when it is a usable credential; otherwise why not. */
export function credentialValue(raw: string): CredentialValue {
  const value = raw.trim();
  if (value === '') return { problem: 'it is empty (or only white space)' };
  if (value.length > MAX_CREDENTIAL_CHARS) return { problem: `it is longer than ${MAX_CREDENTIAL_CHARS / 1024} KiB` };
  if (/[\r\n]/.test(value)) return { problem: 'it has a line break in it' };
  if (/[\x00-\x08\x0b-\x1f\x7f]/.test(value)) return { problem: 'it has a control character in it' };
  if (/[^\x00-\x7f]/.test(value)) return { problem: 'it has characters outside ASCII, which would not be sent as the Secret holds them' };
  return { value };
}
