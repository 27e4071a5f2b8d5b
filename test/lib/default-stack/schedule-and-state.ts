/**
 * The default stack, synthesised once by test/lib/release-signaller.test.ts: the schedule, the
 * counter table and the mail bucket.
 */
import { Capture, Match, type Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { counterTableDefinition } from '../../../lambda/counter-table';
import {
  cfnText,
  functionStatements,
  onlyResource,
  scheduleDeadLetterQueue,
  signallerFunction,
  type SynthesisedDequeue,
} from '../synth-dequeue';

export function scheduleAndStateTests(synthesised: () => SynthesisedDequeue): void {
  let template: Template;
  beforeAll(() => {
    template = synthesised().template;
  });

  describe('the schedule', () => {
    it('runs every 15 minutes in UTC and sends the Scheduler context attributes', () => {
      const input = new Capture();
      template.hasResourceProperties('AWS::Scheduler::Schedule', {
        ScheduleExpression: 'rate(15 minutes)',
        ScheduleExpressionTimezone: 'UTC',
        State: 'ENABLED',
        Target: { Input: input },
      });
      // Exactly this text: the attributes are substituted inside the quotes, so attemptNumber is a string.
      expect(input.asString()).toBe(
        '{"source":"schedule","scheduleArn":"<aws.scheduler.schedule-arn>","scheduledTime":"<aws.scheduler.scheduled-time>","executionId":"<aws.scheduler.execution-id>","attemptNumber":"<aws.scheduler.attempt-number>"}',
      );
    });

    it('targets the function with a retry policy and an encrypted dead-letter queue', () => {
      const fn = signallerFunction(template);
      const queue = scheduleDeadLetterQueue(template);
      template.hasResourceProperties('AWS::Scheduler::Schedule', {
        Target: {
          Arn: { 'Fn::GetAtt': [fn.id, 'Arn'] },
          RetryPolicy: { MaximumRetryAttempts: 3, MaximumEventAgeInSeconds: 900 },
          DeadLetterConfig: { Arn: { 'Fn::GetAtt': [queue.id, 'Arn'] } },
        },
      });
      expect(queue.resource.Properties).toMatchObject({
        SqsManagedSseEnabled: true,
        MessageRetentionPeriod: 1_209_600,
      });
      template.hasResourceProperties('AWS::SQS::QueuePolicy', {
        PolicyDocument: {
          Statement: Match.arrayWith([
            Match.objectLike({
              Effect: 'Deny',
              Condition: { Bool: { 'aws:SecureTransport': 'false' } },
            }),
          ]),
        },
      });
    });
  });

  describe('state and mail', () => {
    it('keeps the counter in an on-demand table keyed by pk, with TTL on expiresAt and PITR, retained and protected from deletion', () => {
      template.hasResource('AWS::DynamoDB::Table', {
        DeletionPolicy: 'Retain',
        UpdateReplacePolicy: 'Retain',
        Properties: {
          KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
          BillingMode: 'PAY_PER_REQUEST',
          TimeToLiveSpecification: { AttributeName: 'expiresAt', Enabled: true },
          PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
          DeletionProtectionEnabled: true,
        },
      });
    });

    it('indexes the status items (only they carry kind) by target, so status is a Query, never a Scan; as the tests make the table', () => {
      const table = onlyResource(template, 'AWS::DynamoDB::Table').resource.Properties;
      expect(table.GlobalSecondaryIndexes).toEqual([
        {
          IndexName: 'status',
          KeySchema: [
            { AttributeName: 'kind', KeyType: 'HASH' },
            { AttributeName: 'target', KeyType: 'RANGE' },
          ],
          Projection: { ProjectionType: 'ALL' },
        },
      ]);
      // The table test/lambda/aws-world.ts and scripts/invoke-local.ts make is this one.
      const byHand = counterTableDefinition('t');
      expect(table.KeySchema).toEqual(byHand.KeySchema);
      expect(table.GlobalSecondaryIndexes).toEqual(byHand.GlobalSecondaryIndexes);
      expect(
        [...table.AttributeDefinitions].sort((a: any, b: any) =>
          a.AttributeName < b.AttributeName ? -1 : 1,
        ),
      ).toEqual(
        [...byHand.AttributeDefinitions].sort((a, b) =>
          a.AttributeName < b.AttributeName ? -1 : 1,
        ),
      );
    });

    /** The mail bucket's key: the one key the bucket's encryption names. */
    const mailKey = () => {
      const bucket = onlyResource(template, 'AWS::S3::Bucket');
      const id = bucket.resource.Properties.BucketEncryption.ServerSideEncryptionConfiguration[0]
        .ServerSideEncryptionByDefault.KMSMasterKeyID['Fn::GetAtt'][0] as string;
      return { id, resource: template.toJSON().Resources[id] };
    };

    it('stores mail in a private, versioned, retained bucket that refuses plain HTTP, encrypted with a rotated key of its own that outlives the stack', () => {
      const bucket = onlyResource(template, 'AWS::S3::Bucket');
      const key = mailKey();
      expect(bucket.resource).toMatchObject({
        DeletionPolicy: 'Retain',
        UpdateReplacePolicy: 'Retain',
      });
      expect(bucket.resource.Properties).toMatchObject({
        PublicAccessBlockConfiguration: {
          BlockPublicAcls: true,
          BlockPublicPolicy: true,
          IgnorePublicAcls: true,
          RestrictPublicBuckets: true,
        },
        BucketEncryption: {
          ServerSideEncryptionConfiguration: [
            {
              ServerSideEncryptionByDefault: {
                SSEAlgorithm: 'aws:kms',
                KMSMasterKeyID: { 'Fn::GetAtt': [key.id, 'Arn'] },
              },
              // One KMS request per bucket key, not per object.
              BucketKeyEnabled: true,
            },
          ],
        },
        VersioningConfiguration: { Status: 'Enabled' },
      });
      expect(key.resource).toMatchObject({
        Type: 'AWS::KMS::Key',
        DeletionPolicy: 'Retain',
        Properties: { EnableKeyRotation: true },
      });
      // Only the account's IAM policies decide who uses it (the function and the reader policy
      // grant it); no service or other principal is named in the key policy.
      expect(
        key.resource.Properties.KeyPolicy.Statement.map((st: any) => cfnText(st.Principal.AWS)),
      ).toEqual(['arn:${AWS::Partition}:iam::${AWS::AccountId}:root']);
      template.hasResourceProperties('AWS::S3::BucketPolicy', {
        Bucket: { Ref: bucket.id },
        PolicyDocument: {
          Statement: Match.arrayWith([
            Match.objectLike({
              Effect: 'Deny',
              Action: 's3:*',
              Condition: { Bool: { 'aws:SecureTransport': 'false' } },
            }),
            Match.objectLike({
              Effect: 'Deny',
              Action: 's3:*',
              Condition: { NumericLessThan: { 's3:TlsVersion': 1.2 } },
            }),
          ]),
        },
      });
    });

    it('keeps mail to deliver for ever, and what deliver took out 30 days: only versions deliver tagged expire, never what the function hid', () => {
      const bucket = onlyResource(template, 'AWS::S3::Bucket');
      expect(bucket.resource.Properties.LifecycleConfiguration.Rules).toEqual([
        {
          Id: 'abort-incomplete-uploads',
          AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 },
          Status: 'Enabled',
        },
        {
          Id: 'taken-out-mail',
          Prefix: 'mail/',
          TagFilters: [{ Key: 'dequeue-expiry', Value: 'allowed' }],
          NoncurrentVersionExpiration: { NoncurrentDays: 30 },
          Status: 'Enabled',
        },
        {
          Id: 'lone-delete-markers',
          Prefix: 'mail/',
          ExpiredObjectDeleteMarker: true,
          Status: 'Enabled',
        },
      ]);
      // No rule ever expires a current version: mail not yet delivered stays.
      for (const rule of bucket.resource.Properties.LifecycleConfiguration.Rules) {
        expect(rule.ExpirationInDays, rule.Id).toBeUndefined();
        expect(rule.ExpirationDate, rule.Id).toBeUndefined();
        expect(rule.Transitions, rule.Id).toBeUndefined();
      }
      // The tag is deliver's to set: the function may not tag, nor delete a version.
      const actions = [...functionStatements(template).values()].flatMap((st) =>
        [st.Action].flat(),
      );
      expect(actions.filter((a: string) => /Tagging|DeleteObjectVersion/.test(a))).toEqual([]);
    });
  });
}
