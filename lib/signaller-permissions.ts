/**
 * Exactly what the release-signalling function may do, one statement per outside system, each on
 * the narrowest resource that IAM can express. Metrics leave through the embedded metric format
 * in the function's log, so there is no cloudwatch:PutMetricData.
 */
import { ArnFormat, Aws, Stack, Validations } from 'aws-cdk-lib';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import type * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import type * as sqs from 'aws-cdk-lib/aws-sqs';

export interface SignallerAccess {
  /** The function's log group. */
  readonly logGroup: logs.ILogGroup;
  /** SSM path holding the configuration, e.g. `/dequeue`. */
  readonly ssmPrefix: string;
  /** Customer managed key of SecureString parameters, if any. */
  readonly parametersKey?: kms.IKey;
  /** Secrets Manager name prefix, e.g. `dequeue/`. */
  readonly secretPrefix: string;
  /** Customer managed key of the secrets, if any. */
  readonly secretsKey?: kms.IKey;
  /** The cycle counter. */
  readonly counterTable: dynamodb.ITable;
  /** The name of the counter table's index over the status items. */
  readonly statusIndex: string;
  /** Where mail received after ATRN is stored. */
  readonly mailBucket: s3.Bucket;
  /** Key prefix of stored mail, e.g. `mail/`. */
  readonly mailPrefix: string;
  /** Whether the function runs in a VPC (it then manages its network interfaces). */
  readonly inVpc: boolean;
}

/** Adds the function's permissions to its role as inline statements. */
export function grantSignallerAccess(role: iam.Role, access: SignallerAccess): void {
  const stack = Stack.of(role);
  const parameterPath = access.ssmPrefix; // validated: leading slash, no trailing slash

  role.addToPolicy(
    new iam.PolicyStatement({
      sid: 'WriteOwnLog',
      actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
      resources: [access.logGroup.logGroupArn],
    }),
  );

  // `<prefix>` itself is the resource GetParametersByPath is authorised on; `<prefix>/*` covers
  // settings and every targets/<name> parameter, whose names are chosen after deployment. A
  // fan-out worker reads the targets its orders name with GetParameters (docs/security.md).
  role.addToPolicy(
    new iam.PolicyStatement({
      sid: 'ReadConfiguration',
      actions: ['ssm:GetParametersByPath', 'ssm:GetParameter', 'ssm:GetParameters'],
      resources: [
        stack.formatArn({
          service: 'ssm',
          resource: 'parameter',
          resourceName: parameterPath.slice(1),
        }),
        stack.formatArn({
          service: 'ssm',
          resource: 'parameter',
          resourceName: `${parameterPath.slice(1)}/*`,
        }),
      ],
    }),
  );

  // Secret ARNs end in a random six-character suffix, so a prefix match is the narrowest form.
  role.addToPolicy(
    new iam.PolicyStatement({
      sid: 'ReadCredentials',
      actions: ['secretsmanager:GetSecretValue'],
      resources: [
        stack.formatArn({
          service: 'secretsmanager',
          resource: 'secret',
          resourceName: `${access.secretPrefix}*`,
          arnFormat: ArnFormat.COLON_RESOURCE_NAME,
        }),
      ],
    }),
  );

  // With the default AWS managed keys (aws/ssm, aws/secretsmanager) the key policies already let
  // principals of this account decrypt through the service, so nothing is granted. A customer
  // managed key is usable only through the service that holds the value.
  if (access.parametersKey) {
    role.addToPolicy(decryptVia(access.parametersKey, 'ssm', 'DecryptConfiguration'));
  }
  if (access.secretsKey) {
    role.addToPolicy(decryptVia(access.secretsKey, 'secretsmanager', 'DecryptCredentials'));
  }

  // GetItem reads the counter; TransactWriteItems (a conditional Put and a conditional Update,
  // no ConditionCheck item) is authorised per item as PutItem and UpdateItem; per-target claims
  // are conditional PutItems. Each target's status (`status#<target>`, beside the counter) is one
  // UpdateItem per cycle, and GetItem reads one back. No Scan: the function never reads the
  // whole table.
  role.addToPolicy(
    new iam.PolicyStatement({
      sid: 'CountCycles',
      actions: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem'],
      resources: [access.counterTable.tableArn],
    }),
  );
  // A coordinator that handed targets to the workers counts their failing and stale statuses
  // from one Query of the status index, which holds the status items only.
  role.addToPolicy(
    new iam.PolicyStatement({
      sid: 'ListTargetStatus',
      actions: ['dynamodb:Query'],
      resources: [`${access.counterTable.tableArn}/index/${access.statusIndex}`],
    }),
  );

  // PutObject also authorises the multipart calls of a large message; AbortMultipartUpload
  // cleans up after a failed one. DeleteObject lets the sink withdraw the envelope of a message
  // it did not acknowledge (docs/odmr.md): the bucket is versioned and the role has neither
  // DeleteObjectVersion nor PutObjectTagging, so a delete only adds a marker, and the old version
  // it hides never carries the tag that lets the lifecycle expire it (lib/mail-store.ts): no
  // stored message can be destroyed by the function. Nothing can be read or listed.
  role.addToPolicy(
    new iam.PolicyStatement({
      sid: 'StoreMail',
      actions: ['s3:PutObject', 's3:AbortMultipartUpload', 's3:DeleteObject'],
      resources: [access.mailBucket.arnForObjects(`${access.mailPrefix}*`)],
    }),
  );
  const mailKey = access.mailBucket.encryptionKey;
  if (mailKey) {
    // SSE-KMS: S3 asks KMS for a data key with the caller's rights (GenerateDataKey), and for a
    // multipart upload decrypts it again to complete it (Decrypt). Only through S3, so the key
    // cannot decrypt anything for the function directly; and the function has no s3:GetObject,
    // so Decrypt through S3 reads no stored mail either.
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'EncryptMail',
        actions: ['kms:GenerateDataKey', 'kms:Decrypt'],
        resources: [mailKey.keyArn],
        conditions: { StringEquals: { 'kms:ViaService': `s3.${Aws.REGION}.amazonaws.com` } },
      }),
    );
  }

  if (access.inVpc) {
    // Lambda creates and removes the function's network interfaces with the function's own role.
    // These are the EC2 actions of AWS's AWSLambdaVPCAccessExecutionRole, without its logs:* on
    // every log group.
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'ManageNetworkInterfaces',
        actions: [
          'ec2:CreateNetworkInterface',
          'ec2:DescribeNetworkInterfaces',
          'ec2:DescribeSubnets',
          'ec2:DeleteNetworkInterface',
          'ec2:AssignPrivateIpAddresses',
          'ec2:UnassignPrivateIpAddresses',
        ],
        resources: ['*'],
      }),
    );
  }

  acknowledgeWildcards(role, access);
}

/**
 * The fan-out work queue (docs/fan-out.md). A cycle that fans out sends its orders with
 * SendMessageBatch, which IAM authorises as sqs:SendMessage. The event source mapping polls with
 * the function's role: the three actions of AWS's AWSLambdaSQSQueueExecutionRole, on this queue
 * only. A worker makes the orders it hands back visible again soon with
 * ChangeMessageVisibilityBatch, authorised as sqs:ChangeMessageVisibility
 * (lambda/work-order-hand-back.ts).
 */
export function grantWorkQueueAccess(role: iam.Role, queue: sqs.IQueue): void {
  role.addToPolicy(
    new iam.PolicyStatement({
      sid: 'QueueWorkOrders',
      actions: ['sqs:SendMessage'],
      resources: [queue.queueArn],
    }),
  );
  role.addToPolicy(
    new iam.PolicyStatement({
      sid: 'ReceiveWorkOrders',
      actions: ['sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:GetQueueAttributes'],
      resources: [queue.queueArn],
    }),
  );
  role.addToPolicy(
    new iam.PolicyStatement({
      sid: 'HandBackWorkOrders',
      actions: ['sqs:ChangeMessageVisibility'],
      resources: [queue.queueArn],
    }),
  );
}

/**
 * Lambda records an asynchronous invocation it gave up on (too old, or the cycle failed) in the
 * function's on-failure destination, sending with the function's role.
 */
export function grantFailedCycleRecords(role: iam.Role, queue: sqs.IQueue): void {
  role.addToPolicy(
    new iam.PolicyStatement({
      sid: 'RecordFailedCycles',
      actions: ['sqs:SendMessage'],
      resources: [queue.queueArn],
    }),
  );
}

function decryptVia(
  key: kms.IKey,
  service: 'ssm' | 'secretsmanager',
  sid: string,
): iam.PolicyStatement {
  return new iam.PolicyStatement({
    sid,
    actions: ['kms:Decrypt'],
    resources: [key.keyArn],
    conditions: { StringEquals: { 'kms:ViaService': `${service}.${Aws.REGION}.amazonaws.com` } },
  });
}

/** Each wildcard left in the policy, and why no narrower resource exists for it. */
function acknowledgeWildcards(role: iam.Role, access: SignallerAccess): void {
  const validations = Validations.of(role);
  validations.acknowledge({
    id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ssm:<AWS::Region>:<AWS::AccountId>:parameter${access.ssmPrefix}/*]`,
    reason:
      'Target parameters (<prefix>/targets/<name>) are created by the operator after deployment; the statement is limited to the configuration path.',
  });
  validations.acknowledge({
    id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:secretsmanager:<AWS::Region>:<AWS::AccountId>:secret:${access.secretPrefix}*]`,
    reason:
      'Secrets are created by the operator after deployment and their ARNs end in a random suffix; the statement is limited to the secret name prefix.',
  });
  const bucketId = Stack.of(role).getLogicalId(access.mailBucket.node.defaultChild as s3.CfnBucket);
  validations.acknowledge({
    id: `AwsSolutions-IAM5[Resource::<${bucketId}.Arn>/${access.mailPrefix}*]`,
    reason:
      'Each stored message gets a new key; the statement is limited to PutObject/AbortMultipartUpload/DeleteObject (versioned bucket: deletes only add markers) under the mail prefix.',
  });
  if (access.inVpc) {
    validations.acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        "Lambda manages the function's VPC network interfaces with these EC2 actions; ec2:Describe* supports no resource-level permissions and the interfaces do not exist before Lambda creates them.",
    });
  }
}
