/**
 * The default stack, synthesised once by test/lib/release-signaller.test.ts: the schedule, the
 * counter table and the mail bucket.
 */
import { Capture, Match, type Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { counterTableDefinition } from '../../../lambda/counter-table';
import {
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

    it('stores mail in a private, encrypted, versioned, retained bucket that refuses plain HTTP', () => {
      const bucket = onlyResource(template, 'AWS::S3::Bucket');
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
            { ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } },
          ],
        },
        VersioningConfiguration: { Status: 'Enabled' },
      });
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

    it('keeps mail and its old versions until deleted by hand, but aborts abandoned multipart uploads', () => {
      const bucket = onlyResource(template, 'AWS::S3::Bucket');
      expect(bucket.resource.Properties.LifecycleConfiguration.Rules).toEqual([
        {
          Id: 'abort-incomplete-uploads',
          AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 },
          Status: 'Enabled',
        },
      ]);
    });
  });
}
