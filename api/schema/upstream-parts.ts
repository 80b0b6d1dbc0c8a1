/**
 * The parts of an upstream that stand on their own: secretRef (a key of a
 * Secret, which the shared Redis cache of the spec names too), the
 * credential the sidecar sets (AuthSchema), and one fallback tier
 * (FallbackTierSchema).
 */
import { Type } from '@sinclair/typebox';
import { FAILURE_CLASSES } from '../failure-classes.js';
import { MAX_SECRET_NAME, SECRET_KEY_PATTERN, SECRET_NAME_PATTERN } from '../secret-names.js';
import { cel, DNS_LABEL_PATTERN, stringEnum } from './shared.js';

/** A key of a Secret in the policy's namespace, which the controller reads and sends to the sidecar (and follows when it changes). */
export const secretRef = (what: string) =>
  Type.Object(
    {
      name: Type.String({ pattern: SECRET_NAME_PATTERN, maxLength: MAX_SECRET_NAME, description: 'Secret name in the policy\'s namespace.' }),
      key: Type.String({ pattern: SECRET_KEY_PATTERN, maxLength: MAX_SECRET_NAME, description: 'Key in the Secret.' }),
    },
    { additionalProperties: false, description: `${what}: a key of a Secret in the policy's namespace. In a cluster only: the controller reads it and sends its value to the sidecar, and a changed value is used from the next request. The Secret must be labelled breakwater.dev/credential: "true" (its owner's consent: whoever may write a policy may name any Secret) and not be a service-account or bootstrap token; the value must be printable ASCII (white space around it is dropped), at most 16 KiB. Until then the sidecar has none (an upstream answers 503 rather than be called without its key; the shared cache connects without a password), and the policy's Accepted condition is False (SecretNotFound, SecretNotAllowed or SecretValueUnusable) and says why.` },
  );

export const AuthSchema = Type.Object(
  {
    secretRef: Type.Optional(secretRef('The credential')),
    env: Type.Optional(Type.String({ minLength: 1, description: 'Locally: read the credential from this environment variable of the sidecar.' })),
    file: Type.Optional(Type.String({ minLength: 1, description: 'Locally: read the credential from this file.' })),
    header: Type.String({ default: 'Authorization', minLength: 1, maxLength: 64, pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", description: 'Header the credential is sent in (an HTTP header name).' }),
    prefix: Type.String({ default: 'Bearer ', maxLength: 64, pattern: '^[\\t\\x20-\\x7e]*$', description: 'Text put before the credential (printable ASCII: no CR, LF or NUL).' }),
  },
  {
    additionalProperties: false,
    description: 'Credential the sidecar sets when calling this upstream: header is set to prefix + the credential, in place of the app\'s own credentials, which are not sent.',
    ...cel({ rule: '[has(self.secretRef), has(self.env), has(self.file)].filter(x, x).size() == 1', message: 'auth: exactly one of secretRef, env or file must be set' }),
  },
);

export const FallbackTierSchema = Type.Object(
  {
    upstream: Type.Optional(Type.String({ pattern: DNS_LABEL_PATTERN, maxLength: 63, description: 'Another upstream of this policy, called with its own breaker, bulkhead, retries and credentials (the app\'s credentials go only to the upstream it addressed).' })),
    model: Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: 'Rewrite the request\'s model for this tier.' })),
    cache: Type.Optional(Type.Object({}, { additionalProperties: false, description: 'The last good answer to an identical request (the stream flag aside: a streaming request gets it as a well-formed stream).' })),
    static: Type.Optional(
      Type.Object(
        { message: Type.String({ minLength: 1, description: 'Content of the degraded answer.' }) },
        { additionalProperties: false, description: 'A degraded answer in the upstream\'s API shape, plain or streamed, marked x-breakwater-degraded: true.' },
      ),
    ),
    when: Type.Optional(
      Type.Array(stringEnum([...FAILURE_CLASSES, 'unavailable', 'budget-exhausted']), {
        uniqueItems: true,
        description: 'Conditions under which this tier is tried (default: any failure the app did not cause, except a content-filter refusal, which goes only to a tier whose when names content-filter). unavailable: breaker open, bulkhead full or retries exhausted; budget-exhausted: the upstream\'s or the policy\'s token or cost budget is spent.',
      }),
    ),
  },
  {
    additionalProperties: false,
    description: 'One fallback tier: exactly one of upstream, cache, static.',
    ...cel(
      { rule: '[has(self.upstream), has(self.cache), has(self.static)].filter(x, x).size() == 1', message: 'fallback: exactly one of upstream, cache or static must be set' },
      { rule: '!has(self.model) || has(self.upstream)', message: 'fallback.model only applies to an upstream tier' },
    ),
  },
);
