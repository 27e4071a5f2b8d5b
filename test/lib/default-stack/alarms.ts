/**
 * The default stack, synthesised once by test/lib/release-signaller.test.ts: the alarms and the
 * topic they notify.
 */
import { readFileSync } from 'node:fs';
import { Match, type Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  FAILING_TARGETS_METRIC,
  SERVER_DOWN_TARGETS_METRIC,
  STALE_TARGETS_METRIC,
} from '../../../lib/signaller-alarms';
import type { CfnTemplate } from '../../deploy/cloud-assembly';
import { alarmDelivery } from '../alarm-delivery';
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
    /** The alarm topic's key (the mail bucket has a key of its own). */
    const topicKey = () => {
      const topic = onlyResource(template, 'AWS::SNS::Topic');
      const id = topic.resource.Properties.KmsMasterKeyId['Fn::GetAtt'][0] as string;
      return { id, resource: template.toJSON().Resources[id] };
    };
    const alarmSource = {
      StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } },
      ArnLike: {
        'aws:SourceArn': {
          'Fn::Join': [
            '',
            [
              'arn:',
              { Ref: 'AWS::Partition' },
              ':cloudwatch:',
              { Ref: 'AWS::Region' },
              ':',
              { Ref: 'AWS::AccountId' },
              ':alarm:*',
            ],
          ],
        },
      },
    };

    it('notify an SNS topic encrypted with a rotated key that CloudWatch may use for alarms of this account and region', () => {
      const key = topicKey();
      expect(key.resource.Properties.EnableKeyRotation).toBe(true);
      expect(key.resource.Properties.KeyPolicy.Statement).toContainEqual({
        Sid: 'CloudWatchAlarmsEncrypt',
        Action: ['kms:Decrypt', 'kms:GenerateDataKey*'],
        Effect: 'Allow',
        Principal: { Service: 'cloudwatch.amazonaws.com' },
        Resource: '*',
        Condition: alarmSource,
      });
      template.resourceCountIs('AWS::SNS::Subscription', 0);
    });

    it("let CloudWatch publish to the topic: the topic policy replaces SNS's default one, so it says so, for alarms of this account and region", () => {
      const topic = onlyResource(template, 'AWS::SNS::Topic');
      const policy = onlyResource(template, 'AWS::SNS::TopicPolicy');
      expect(policy.resource.Properties.Topics).toEqual([{ Ref: topic.id }]);
      expect(policy.resource.Properties.PolicyDocument.Statement).toContainEqual({
        Sid: 'CloudWatchAlarmsPublish',
        Effect: 'Allow',
        Principal: { Service: 'cloudwatch.amazonaws.com' },
        Action: 'sns:Publish',
        Resource: { Ref: topic.id },
        Condition: alarmSource,
      });
    });

    it('each reach the topic: every action of every alarm, followed to the topic policy and the key policy as IAM decides them', () => {
      const delivery = alarmDelivery(template.toJSON() as CfnTemplate);
      expect(delivery.problems).toEqual([]);
      // Nine alarms, each notifying on ALARM and on OK: nothing is passed by matching nothing.
      expect(delivery.alarms).toBe(9);
      expect(delivery.routes).toHaveLength(18);
      expect(new Set(delivery.routes.map((r) => r.allowedBy)).size).toBe(1);
      expect(delivery.routes.every((r) => r.key === topicKey().id)).toBe(true);
    });

    it('the walk fails when CloudWatch is not allowed, as before this was fixed (the check can fail)', () => {
      const withoutStatement = (sid: string, type: string, property: string) => {
        const copy = structuredClone(template.toJSON()) as CfnTemplate;
        for (const r of Object.values(copy.Resources)) {
          if (r.Type !== type) continue;
          const doc = r.Properties![property] as { Statement: { Sid?: string }[] };
          doc.Statement = doc.Statement.filter((st) => st.Sid !== sid);
        }
        return alarmDelivery(copy).problems;
      };
      const noPublish = withoutStatement(
        'CloudWatchAlarmsPublish',
        'AWS::SNS::TopicPolicy',
        'PolicyDocument',
      );
      expect(noPublish).toHaveLength(18);
      expect(noPublish[0]).toMatch(
        /topic policy\): CloudWatch may not sns:Publish \(implicitly denied\)/,
      );
      const noKey = withoutStatement('CloudWatchAlarmsEncrypt', 'AWS::KMS::Key', 'KeyPolicy');
      expect(
        noKey.some((p) => /key policy\): CloudWatch may not kms:GenerateDataKey/.test(p)),
      ).toBe(true);
      const unconditional = structuredClone(template.toJSON()) as CfnTemplate;
      for (const r of Object.values(unconditional.Resources)) {
        if (r.Type !== 'AWS::SNS::TopicPolicy') continue;
        for (const st of (r.Properties!.PolicyDocument as { Statement: Record<string, unknown>[] })
          .Statement)
          if (st.Sid === 'CloudWatchAlarmsPublish') delete st.Condition;
      }
      expect(alarmDelivery(unconditional).problems[0]).toMatch(
        /is allowed for an alarm of .*444455556666/,
      );
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
      [
        "a customer's own server down 4 cycles in a row",
        SERVER_DOWN_TARGETS_METRIC.metricName,
        'has not answered the check before its release signal 4 cycles in a row',
      ],
    ])(
      'page for %s, from the count the handler publishes once per cycle',
      (_, metricName, description) => {
        const topic = onlyResource(template, 'AWS::SNS::Topic');
        template.hasResourceProperties('AWS::CloudWatch::Alarm', {
          Namespace: 'Dequeue',
          MetricName: metricName,
          // The stack's own service dimension: two stacks never read each other's targets.
          Dimensions: [{ Name: 'service', Value: 'Dequeue' }],
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

    it('notify each scheduled cycle that never ran: each arrival in the dead-letter queue, not its depth', () => {
      const queue = scheduleDeadLetterQueue(template);
      const topic = onlyResource(template, 'AWS::SNS::Topic');
      template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        Namespace: 'AWS/SQS',
        // Scheduler's failed deliveries and Lambda's on-failure records come with SendMessage.
        MetricName: 'NumberOfMessagesSent',
        Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [queue.id, 'QueueName'] } }],
        Statistic: 'Sum',
        Threshold: 1,
        ComparisonOperator: 'GreaterThanOrEqualToThreshold',
        TreatMissingData: 'notBreaching',
        AlarmActions: [{ Ref: topic.id }],
        OKActions: [{ Ref: topic.id }],
      });
      expect(
        template.findResources('AWS::CloudWatch::Alarm', {
          Properties: {
            MetricName: 'ApproximateNumberOfMessagesVisible',
            Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [queue.id, 'QueueName'] } }],
          },
        }),
      ).toEqual({});
    });

    it('page when no cycle ran for twice the interval: missing data is breaching', () => {
      const fn = signallerFunction(template);
      template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        Namespace: 'AWS/Lambda',
        MetricName: 'Invocations',
        Dimensions: [{ Name: 'FunctionName', Value: { Ref: fn.id } }],
        Statistic: 'Sum',
        Period: 900,
        EvaluationPeriods: 2,
        DatapointsToAlarm: 2,
        Threshold: 1,
        ComparisonOperator: 'LessThanThreshold',
        TreatMissingData: 'breaching',
        AlarmDescription: Match.stringLikeRegexp('has not been invoked for 30 minutes'),
      });
    });

    it('page when Lambda drops asynchronous invocations', () => {
      const fn = signallerFunction(template);
      template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        Namespace: 'AWS/Lambda',
        MetricName: 'AsyncEventsDropped',
        Dimensions: [{ Name: 'FunctionName', Value: { Ref: fn.id } }],
        Statistic: 'Sum',
        Threshold: 1,
        ComparisonOperator: 'GreaterThanOrEqualToThreshold',
        TreatMissingData: 'notBreaching',
      });
    });

    it('are nine: seven of SignallerAlarms and two of the work queue (test/lib/work-queue.test.ts)', () => {
      template.resourceCountIs('AWS::CloudWatch::Alarm', 9);
    });

    it('are as many as docs/deploy.md says, and its alarm table has a row for each', () => {
      const guide = readFileSync(new URL('../../../docs/deploy.md', import.meta.url), 'utf8');
      const alarms = Object.keys(template.findResources('AWS::CloudWatch::Alarm')).length;
      const said = /\b(\w+) CloudWatch alarms\b/.exec(guide)?.[1];
      expect(NUMBER_WORDS.indexOf(said ?? ''), `"${said} CloudWatch alarms"`).toBe(alarms);
      const table = guide.slice(guide.indexOf('| alarm '));
      const rows = table
        .split('\n')
        .map((line) => line.trim())
        .slice(2)
        .filter(
          (line, i, lines) =>
            line.startsWith('|') && lines.slice(0, i).every((l) => l.startsWith('|')),
        );
      expect(rows).toHaveLength(alarms);
    });
  });
}

const NUMBER_WORDS = [
  'no',
  'one',
  'two',
  'three',
  'four',
  'five',
  'six',
  'seven',
  'eight',
  'nine',
  'ten',
  'eleven',
  'twelve',
];
