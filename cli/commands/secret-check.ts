/**
 * `config push` warns about an `auth.secretId` that names no secret in Secrets Manager: the
 * function would report that target `config-error` every cycle until the secret exists, and the
 * alarm fires cycles later. A warning, not a refusal: creating the secret after the push is a
 * fair order of work. DescribeSecret reads the secret's metadata, never its value; an operator
 * without that permission (or any other fault) gets no warning rather than a false one.
 */
import { DescribeSecretCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { awsClientOptions } from '../aws-clients';
import type { CliIo } from '../io';

/** DescribeSecret calls at once (Secrets Manager allows thousands a second; a few suffice). */
const CONCURRENCY = 4;

/** Of `ids`, those Secrets Manager says do not exist (ResourceNotFoundException). */
export async function secretsNotFound(ids: readonly string[], io: CliIo): Promise<Set<string>> {
  const unique = [...new Set(ids)];
  const missing = new Set<string>();
  if (!unique.length) return missing;
  // One attempt per secret: a warning is not worth the adaptive retries the writes get.
  const client = new SecretsManagerClient({ ...awsClientOptions(io), maxAttempts: 2 });
  try {
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < unique.length) {
        const id = unique[next++]!;
        try {
          await client.send(new DescribeSecretCommand({ SecretId: id }));
        } catch (e) {
          if ((e as { name?: string }).name === 'ResourceNotFoundException') missing.add(id);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(CONCURRENCY, unique.length) }, worker));
  } finally {
    client.destroy();
  }
  return missing;
}
