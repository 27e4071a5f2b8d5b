/**
 * What the SSM path, the secret name prefix and the mail key prefix may look like. They become IAM
 * resource ARNs, so none may hold a wildcard: `*` or `?` in a prefix would widen the grant.
 * Shared by the context reader and the construct, which both reject a bad prefix before synthesis.
 */

export interface PrefixRule {
  readonly pattern: RegExp;
  /** Completes "must be …". */
  readonly expected: string;
}

/** `/dequeue`, `/prod/dequeue`: the root `/` alone would cover every parameter of the account. */
export const SSM_PREFIX: PrefixRule = {
  pattern: /^(\/[A-Za-z0-9_.-]+)+$/,
  expected:
    'an SSM parameter path such as /dequeue: a leading slash, no trailing slash, no wildcards',
};

/** `dequeue/`: Secrets Manager name characters, without wildcards. */
export const SECRET_PREFIX: PrefixRule = {
  pattern: /^[A-Za-z0-9/_+=.@-]+$/,
  expected:
    'a Secrets Manager name prefix such as dequeue/ (letters, digits and /_+=.@-, no wildcards)',
};

/** `mail/`: S3 "safe" key characters, one or more segments, ending in a slash. */
export const MAIL_PREFIX: PrefixRule = {
  pattern: /^[A-Za-z0-9!_.'()-]+(\/[A-Za-z0-9!_.'()-]+)*\/$/,
  expected: 'an S3 key prefix such as mail/: no leading slash, ending with a slash, no wildcards',
};
