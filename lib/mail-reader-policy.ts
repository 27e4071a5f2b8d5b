/**
 * The managed policy an operator attaches to the machine (role or user) that runs
 * `dequeue deliver --bucket <MailBucketName> --prefix <mailPrefix>`: exactly what taking mail out
 * of the store needs, on the mail prefix only. The function's own role stays add-only.
 *
 * What deliver does in S3 (docs/deploy.md, "Taking the mail out"): list the stored messages
 * and their envelopes, read them, delete a message once every recipient has a final answer (the
 * versioned bucket keeps the old version, tagged first so that it may expire), and move one
 * refused for good under
 * `<prefix>failed/`, with the server's replies beside it: a copy written there, then the
 * original deleted. Two runs never deliver one message at once: each claims a message by writing
 * `<id>.claim` beside it with a conditional PutObject (If-None-Match, a stale lease taken over
 * with If-Match), and records recipients already answered in `<id>.progress`. Those two kinds of
 * key are all it may write beside the stored mail: it cannot overwrite a message or envelope.
 */
import { Aws, Stack, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { EXPIRY_TAG } from './mail-store';

export interface MailReaderPolicyProps {
  /** The mail bucket. */
  readonly bucket: s3.IBucket;
  /** Key prefix of stored mail, e.g. `mail/` (validated: ends with `/`, no wildcards). */
  readonly mailPrefix: string;
}

export class MailReaderPolicy extends Construct {
  readonly policy: iam.ManagedPolicy;

  constructor(scope: Construct, id: string, props: MailReaderPolicyProps) {
    super(scope, id);
    const { bucket, mailPrefix } = props;
    const failedPrefix = `${mailPrefix}failed/`;

    const statements = [
      // s3:prefix is what ListObjectsV2 asks for: `mail/` itself or anything below it.
      new iam.PolicyStatement({
        sid: 'ListMail',
        actions: ['s3:ListBucket'],
        resources: [bucket.bucketArn],
        conditions: { StringLike: { 's3:prefix': [`${mailPrefix}*`] } },
      }),
      new iam.PolicyStatement({
        sid: 'TakeMail',
        actions: ['s3:GetObject', 's3:DeleteObject'],
        resources: [bucket.arnForObjects(`${mailPrefix}*`)],
      }),
      // Before it takes a message out, deliver tags the message's and its envelope's current
      // version (lib/mail-store.ts, EXPIRY_TAG): only versions so tagged may expire.
      new iam.PolicyStatement({
        sid: 'LetTakenMailExpire',
        actions: ['s3:PutObjectTagging'],
        resources: [bucket.arnForObjects(`${mailPrefix}*`)],
        conditions: {
          'ForAllValues:StringEquals': { 's3:RequestObjectTagKeys': [EXPIRY_TAG.key] },
        },
      }),
      new iam.PolicyStatement({
        sid: 'ClaimMail',
        actions: ['s3:PutObject'],
        resources: [
          bucket.arnForObjects(`${mailPrefix}*.claim`),
          bucket.arnForObjects(`${mailPrefix}*.progress`),
        ],
      }),
      new iam.PolicyStatement({
        sid: 'SetAsideRefusedMail',
        actions: ['s3:PutObject'],
        resources: [bucket.arnForObjects(`${failedPrefix}*`)],
      }),
    ];
    if (bucket.encryptionKey) {
      // Reading needs Decrypt; writing under failed/ needs a data key. Only through S3.
      statements.push(
        new iam.PolicyStatement({
          sid: 'UseMailKey',
          actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
          resources: [bucket.encryptionKey.keyArn],
          conditions: { StringEquals: { 'kms:ViaService': `s3.${Aws.REGION}.amazonaws.com` } },
        }),
      );
    }

    this.policy = new iam.ManagedPolicy(this, 'Policy', {
      description: `dequeue deliver --bucket: list, read and delete stored mail under ${mailPrefix}, claim it (.claim, .progress), set refused mail aside under ${failedPrefix}`,
      statements,
    });

    const bucketId = Stack.of(this).getLogicalId(bucket.node.defaultChild as s3.CfnBucket);
    const validations = Validations.of(this.policy);
    validations.acknowledge({
      id: `AwsSolutions-IAM5[Resource::<${bucketId}.Arn>/${mailPrefix}*]`,
      reason:
        'Each stored message has a key of its own, created after deployment; the statement is limited to GetObject/DeleteObject under the mail prefix (versioned bucket: deletes only add markers).',
    });
    for (const kind of ['claim', 'progress']) {
      validations.acknowledge({
        id: `AwsSolutions-IAM5[Resource::<${bucketId}.Arn>/${mailPrefix}*.${kind}]`,
        reason: `A running deliver writes <id>.${kind} beside each message it works on (keys created at run time); PutObject is limited to keys ending in .${kind} under the mail prefix.`,
      });
    }
    validations.acknowledge({
      id: `AwsSolutions-IAM5[Resource::<${bucketId}.Arn>/${failedPrefix}*]`,
      reason:
        'Refused messages are written under their own keys below failed/; the statement is limited to PutObject there.',
    });
  }
}
