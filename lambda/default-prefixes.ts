/**
 * Where a deployment keeps its things, by default: the configuration under an SSM path, the
 * AUTH credentials under a Secrets Manager name prefix, ATRN mail under an S3 key prefix. Defined
 * once, here, for the function, the CLI's operating commands and the CDK construct alike.
 */

/** `<prefix>/settings` and `<prefix>/targets/<name>` in SSM Parameter Store. */
export const DEFAULT_SSM_PREFIX = '/dequeue';
/** Secrets the function may read: `auth.secretId` must start with this. */
export const DEFAULT_SECRET_PREFIX = 'dequeue/';
/** ATRN mail in the bucket: `<prefix><target>/...`. */
export const DEFAULT_MAIL_PREFIX = 'mail/';
