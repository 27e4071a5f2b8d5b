/**
 * The objects of the S3 mail store as `deliver` reads and moves them: a key's text or stream, a
 * small JSON record written, a copy (in parts above S3's single-copy limit, server-side), a
 * delete. Every S3 failure leaves as a DequeueError naming the object: a ConfigError when the
 * bucket or the credentials are wrong (exit status 2), temporary otherwise.
 */
import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  PutObjectCommand,
  PutObjectTaggingCommand,
  type S3Client,
  UploadPartCopyCommand,
} from '@aws-sdk/client-s3';
import type { Readable } from 'node:stream';
import { ConfigError, DequeueError } from '../../lambda/core/errors';
import { describeAwsError } from '../../lambda/adapters/aws-errors';
import { EXPIRY_TAG } from '../../lambda/mail-retention';

/**
 * Above this a message goes to failed/ as a multipart copy. S3's CopyObject limit is "5 GB":
 * the smaller reading (10^9 bytes) keeps a single copy below it whichever S3 means.
 */
export const MULTIPART_COPY_ABOVE_BYTES = 5 * 1000 ** 3;
/** Each UploadPartCopy's range (S3: 5 MiB to 5 GiB, at most 10,000 parts); a few at once. */
const COPY_PART_BYTES = 512 * 1024 * 1024;
const COPY_PARTS_AT_ONCE = 4;
const MAX_PARTS = 10_000;

/** The message's object as claimed: what a copy to failed/ needs. */
export interface StoredObject {
  readonly size: number;
  readonly etag?: string;
  readonly contentType?: string;
  readonly metadata?: Record<string, string>;
}

/** What to do about the faults a person can fix, after the service's own words. */
const S3_FIX: Readonly<Record<string, string>> = {
  NoSuchBucket: ": give --bucket the stack's MailBucketName output (and AWS_REGION its region)",
  AccessDenied:
    ": attach the stack's MailReaderPolicyArn output (a managed policy) to this user or role",
};

export function s3Error(what: string, e: unknown): DequeueError {
  const name = (e as Error).name;
  // describeAwsError says what the SDK's chain reads when it found no region or credentials.
  if (
    name === 'NoSuchBucket' ||
    name === 'AccessDenied' ||
    name === 'InvalidAccessKeyId' ||
    name === 'CredentialsProviderError' ||
    (e as Error).message === 'Region is missing'
  ) {
    return new ConfigError('--bucket', '', `${what}: ${describeAwsError(e)}${S3_FIX[name] ?? ''}`, {
      cause: e,
    });
  }
  return new DequeueError('temporary', `${what}: ${describeAwsError(e)}`, { cause: e });
}

export const status = (e: unknown) =>
  (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
export const notFound = (e: unknown) =>
  status(e) === 404 || (e as Error).name === 'NoSuchKey' || (e as Error).name === 'NotFound';
export const conflict = (e: unknown) => status(e) === 412 || status(e) === 409;
/**
 * Tags the current version of `key` so that the bucket's lifecycle may expire it once it is no
 * longer current (lambda/mail-retention.ts). Best effort: a reader policy from before the tag
 * (no s3:PutObjectTagging) leaves the version untagged, kept rather than lost.
 */
export async function allowExpiry(client: S3Client, bucket: string, key: string): Promise<void> {
  await client
    .send(
      new PutObjectTaggingCommand({
        Bucket: bucket,
        Key: key,
        Tagging: { TagSet: [{ Key: EXPIRY_TAG.key, Value: EXPIRY_TAG.value }] },
      }),
    )
    .catch(() => undefined);
}

export interface S3MailObjectsOptions {
  /** Default MULTIPART_COPY_ABOVE_BYTES (tests lower it to prove the multipart path on moto). */
  readonly multipartCopyAboveBytes?: number;
  /** Default 512 MiB. */
  readonly copyPartBytes?: number;
}

export class S3MailObjects {
  constructor(
    private readonly client: S3Client,
    private readonly bucket: string,
    private readonly options: S3MailObjectsOptions = {},
  ) {}

  url(key: string): string {
    return `s3://${this.bucket}/${key}`;
  }

  async text(key: string): Promise<string> {
    try {
      const got = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      return await got.Body!.transformToString();
    } catch (e) {
      if (notFound(e)) throw new DequeueError('temporary', `missing s3://${this.bucket}/${key}`);
      throw s3Error(`cannot read s3://${this.bucket}/${key}`, e);
    }
  }

  async stream(key: string): Promise<Readable> {
    try {
      const got = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      return got.Body as Readable;
    } catch (e) {
      throw s3Error(`cannot read s3://${this.bucket}/${key}`, e);
    }
  }

  async put(key: string, body: string): Promise<void> {
    try {
      await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: key,
          Body: body,
          ContentType: 'application/json',
        }),
      );
    } catch (e) {
      throw s3Error(`cannot write s3://${this.bucket}/${key}`, e);
    }
  }

  private copySource(key: string): string {
    return `${this.bucket}/${key.split('/').map(encodeURIComponent).join('/')}`;
  }

  async copy(from: string, to: string): Promise<void> {
    try {
      await this.client.send(
        new CopyObjectCommand({
          Bucket: this.bucket,
          Key: to,
          CopySource: this.copySource(from),
          // No tags on the copy: copying a source that carries the expiry tag (a run stopped
          // between tagging and deleting it) would need s3:GetObjectTagging, which deliver has
          // not, and the copy under failed/ is current anyway.
          TaggingDirective: 'REPLACE',
        }),
      );
    } catch (e) {
      throw s3Error(`cannot copy s3://${this.bucket}/${from} to ${to}`, e);
    }
  }

  /**
   * A message to failed/: one CopyObject, or above the single-copy limit a multipart upload of
   * UploadPartCopy ranges (server-side; nothing passes through this machine). Every part is
   * copied only if the source is still the version we claimed (If-Match its ETag). A copy that
   * fails half-way leaves an incomplete upload, which the bucket's abort-incomplete-uploads
   * lifecycle rule removes after a day (the reader's policy has no AbortMultipartUpload).
   */
  async copyMessage(from: string, to: string, source: StoredObject): Promise<void> {
    const above = this.options.multipartCopyAboveBytes ?? MULTIPART_COPY_ABOVE_BYTES;
    if (source.size <= above) return this.copy(from, to);
    const what = `cannot copy s3://${this.bucket}/${from} (${source.size} bytes) to ${to} in parts`;
    const partBytes = Math.max(
      this.options.copyPartBytes ?? COPY_PART_BYTES,
      Math.ceil(source.size / MAX_PARTS),
    );
    try {
      const { UploadId } = await this.client.send(
        new CreateMultipartUploadCommand({
          Bucket: this.bucket,
          Key: to,
          ContentType: source.contentType ?? 'message/rfc822',
          Metadata: source.metadata,
        }),
      );
      const count = Math.ceil(source.size / partBytes);
      const etags: string[] = new Array<string>(count);
      let next = 0;
      const worker = async () => {
        while (next < count) {
          const i = next++;
          const first = i * partBytes;
          const last = Math.min(source.size, first + partBytes) - 1;
          const part = await this.client.send(
            new UploadPartCopyCommand({
              Bucket: this.bucket,
              Key: to,
              UploadId,
              PartNumber: i + 1,
              CopySource: this.copySource(from),
              CopySourceRange: `bytes=${first}-${last}`,
              CopySourceIfMatch: source.etag,
            }),
          );
          etags[i] = part.CopyPartResult!.ETag!;
        }
      };
      // Every worker settled before the result counts: nothing left running after a failure.
      const settled = await Promise.allSettled(
        Array.from({ length: Math.min(COPY_PARTS_AT_ONCE, count) }, worker),
      );
      const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
      if (failed) throw failed.reason;
      await this.client.send(
        new CompleteMultipartUploadCommand({
          Bucket: this.bucket,
          Key: to,
          UploadId,
          MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) },
        }),
      );
    } catch (e) {
      throw s3Error(what, e);
    }
  }

  /** See allowExpiry above. */
  allowExpiry(key: string): Promise<void> {
    return allowExpiry(this.client, this.bucket, key);
  }

  async delete(key: string): Promise<void> {
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
    } catch (e) {
      throw s3Error(`cannot delete s3://${this.bucket}/${key}`, e);
    }
  }
}
