/**
 * Where mail pulled with ATRN is kept until `dequeue deliver` takes it out: one versioned S3
 * bucket, private and TLS only, kept when the stack is deleted (our 250 after the final dot made
 * the provider delete its copy: this is the only one).
 *
 * Privacy: by default the objects are encrypted with a KMS key of the store's own (SSE-KMS, with
 * an S3 Bucket Key so that KMS is asked once per bucket key, not per object). Reading an object
 * then needs kms:Decrypt on that key besides s3:GetObject, which only the MailReaderPolicy
 * grants (the function may encrypt, never read): a principal with broad s3:GetObject (the
 * ReadOnlyAccess managed policy, a support role) sees that objects exist, not what they say.
 * `encryption: 's3'` keeps S3-managed keys (SSE-S3): no key to pay for (USD 1 a month) and no
 * KMS requests, for an account where nobody holds broad read access.
 *
 * Retention: mail still to deliver is current and never expires. What `deliver` has taken out
 * (delivered, or set aside under failed/) stays as an old version, for a second chance, until
 * `expiration` after it was taken out (default 30 days); `infrequentAccessAfter` moves those old
 * versions (the bulk of the bucket, once mail flows) to Standard-IA on the way.
 *
 * Which old versions expire is decided by a tag only `deliver` can write: just before it takes a
 * message out it tags the message's and its envelope's current version `dequeue-expiry=allowed`
 * (cli/adapters/s3-mail-objects.ts), and only versions so tagged expire. The function can put
 * objects and delete them (withdrawing a message it could not acknowledge), but it has no
 * s3:PutObjectTagging and no s3:DeleteObjectVersion: a version it overwrote or hid behind a
 * delete marker is never tagged, so it never expires, and nothing it does can destroy a stored
 * message.
 */
import { Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { EXPIRY_TAG } from '../lambda/mail-retention';

export { EXPIRY_TAG };
/** How long taken-out mail's old versions are kept by default. */
export const DEFAULT_MAIL_EXPIRATION = Duration.days(30);

export interface MailStoreProps {
  /** Key prefix of stored mail (ends with `/`). */
  readonly mailPrefix: string;
  /** SSE-KMS with a key of the store's own, or S3-managed keys. */
  readonly encryption: 'kms' | 's3';
  /** Old versions of taken-out mail are deleted this long after they were taken out. */
  readonly expiration: Duration;
  /** Old versions of taken-out mail move to Standard-IA this long after they were taken out. */
  readonly infrequentAccessAfter?: Duration;
}

export class MailStore extends Construct {
  readonly bucket: s3.Bucket;
  /** The key of the bucket; undefined with S3-managed keys. */
  readonly key?: kms.Key;

  constructor(scope: Construct, id: string, props: MailStoreProps) {
    super(scope, id);
    if (props.encryption === 'kms') {
      this.key = new kms.Key(this, 'Key', {
        description: 'Encrypts the mail dequeue stored after ATRN',
        enableKeyRotation: true,
        // The mail it encrypts outlives the stack (the bucket is retained): so must the key.
        removalPolicy: RemovalPolicy.RETAIN,
      });
    }

    this.bucket = new s3.Bucket(scope, 'MailBucket', {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      minimumTLSVersion: 1.2,
      ...(this.key
        ? {
            encryption: s3.BucketEncryption.KMS,
            encryptionKey: this.key,
            bucketKeyEnabled: true,
          }
        : { encryption: s3.BucketEncryption.S3_MANAGED }),
      // Our 250 after the final dot made the provider delete its copy: this is the only one.
      versioned: true,
      removalPolicy: RemovalPolicy.RETAIN,
      lifecycleRules: [
        // A multipart upload cut short by the function's deadline would otherwise be billed forever.
        { id: 'abort-incomplete-uploads', abortIncompleteMultipartUploadAfter: Duration.days(1) },
        {
          id: 'taken-out-mail',
          prefix: props.mailPrefix,
          // Only old versions that deliver tagged as it took them out (see above).
          tagFilters: { [EXPIRY_TAG.key]: EXPIRY_TAG.value },
          noncurrentVersionExpiration: props.expiration,
          noncurrentVersionTransitions: props.infrequentAccessAfter
            ? [
                {
                  storageClass: s3.StorageClass.INFREQUENT_ACCESS,
                  transitionAfter: props.infrequentAccessAfter,
                },
              ]
            : undefined,
        },
        {
          // Once a message's old versions are gone its delete marker is alone: S3 removes it.
          // (A rule with tags cannot say this: S3 refuses ExpiredObjectDeleteMarker there.)
          id: 'lone-delete-markers',
          prefix: props.mailPrefix,
          expiredObjectDeleteMarker: true,
        },
      ],
    });
    Validations.of(this.bucket).acknowledge({
      id: 'AwsSolutions-S1',
      reason:
        'Only the function writes here (PutObject under the mail prefix) and only `dequeue deliver` with the MailReaderPolicy reads it; a second bucket of access logs would hold no more than CloudTrail data events can when needed.',
    });
  }
}
