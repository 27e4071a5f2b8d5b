/**
 * The default stack, synthesised once by test/lib/release-signaller.test.ts: the alarms and the
 * topic they notify.
 */
import { Match, type Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { FAILING_TARGETS_METRIC, STALE_TARGETS_METRIC } from '../../../lib/signaller-alarms';
import {
  onlyResource,
  scheduleDeadLetterQueue,
  signallerFunction,
  type SynthesisedDequeue,
} from '../synth-dequeue';

export function alarmTests(synthesised: () => SynthesisedDequeue): void {
  let template: Template;
  beforeAll(() => {
    template = synthesised().template;
  });

  describe('alarms', () => {
    it('notify an SNS topic encrypted with a rotated key that CloudWatch may use', () => {
      const key = onlyResource(template, 'AWS::KMS::Key');
      expect(key.resource.Properties.EnableKeyRotation).toBe(true);
      expect(key.resource.Properties.KeyPolicy.Statement).toContainEqual({
        Action: ['kms:Decrypt', 'kms:GenerateDataKey*'],
        Effect: 'Allow',
        Principal: { Service: 'cloudwatch.amazonaws.com' },
        Resource: '*',
      });
      template.hasResourceProperties('AWS::SNS::Topic', {
        KmsMasterKeyId: { 'Fn::GetAtt': [key.id, 'Arn'] },
      });
      template.resourceCountIs('AWS::SNS::Subscription', 0);
    });

    it('watch function errors', () => {
      const fn = signallerFunction(template);
      const topic = onlyResource(template, 'AWS::SNS::Topic');
      template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        Namespace: 'AWS/Lambda',
        MetricName: 'Errors',
        Dimensions: [{ Name: 'FunctionName', Value: { Ref: fn.id } }],
        Statistic: 'Sum',
        Threshold: 1,
        ComparisonOperator: 'GreaterThanOrEqualToThreshold',
        TreatMissingData: 'notBreaching',
        AlarmActions: [{ Ref: topic.id }],
        OKActions: [{ Ref: topic.id }],
      });
    });

    it.each([
      [
        'a target failing 3 cycles in a row',
        FAILING_TARGETS_METRIC.metricName,
        'failed 3 cycles in a row',
      ],
      [
        'a target without success for a day',
        STALE_TARGETS_METRIC.metricName,
        'for more than 1 day',
      ],
    ])(
      'page for %s, from the count the handler publishes once per cycle',
      (_, metricName, description) => {
        const topic = onlyResource(template, 'AWS::SNS::Topic');
        template.hasResourceProperties('AWS::CloudWatch::Alarm', {
          Namespace: 'Dequeue',
          MetricName: metricName,
          Dimensions: [{ Name: 'service', Value: 'dequeue' }],
          Statistic: 'Maximum',
          Period: 900,
          EvaluationPeriods: 1,
          Threshold: 1,
          ComparisonOperator: 'GreaterThanOrEqualToThreshold',
          // A period without a cycle keeps the state: only the next cycle's count can clear it.
          TreatMissingData: 'ignore',
          AlarmDescription: Match.stringLikeRegexp(description),
          AlarmActions: [{ Ref: topic.id }],
          OKActions: [{ Ref: topic.id }],
        });
      },
    );

    it('do not page for a single failed target', () => {
      expect(
        template.findResources('AWS::CloudWatch::Alarm', {
          Properties: { MetricName: 'TargetFailures' },
        }),
      ).toEqual({});
    });

    it('watch the dead-letter queue', () => {
      const queue = scheduleDeadLetterQueue(template);
      template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        Namespace: 'AWS/SQS',
        MetricName: 'ApproximateNumberOfMessagesVisible',
        Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [queue.id, 'QueueName'] } }],
        Threshold: 1,
        ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      });
      // Four of SignallerAlarms, and the fan-out work queue's dead-letter alarm (test/lib/work-queue.test.ts).
      template.resourceCountIs('AWS::CloudWatch::Alarm', 5);
    });
  });
}
