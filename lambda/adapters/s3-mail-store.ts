/**
 * The S3 mail store as the handler wires it: the client and the sink built together, so that the
 * handler can load this module lazily (a dynamic import keeps every export of the module it names,
 * so it names this small one rather than the SDK package).
 */
import { S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import type { MemoryBudget } from '../core/memory-budget';
import type { MailSink } from '../core/ports';
import { createS3MailSink } from './s3-mail-sink';

export function openS3MailStore(
  client: S3ClientConfig,
  bucket: string,
  prefix: string | undefined,
  memory?: MemoryBudget,
): MailSink {
  return createS3MailSink({ client: new S3Client(client), bucket, prefix, memory });
}
