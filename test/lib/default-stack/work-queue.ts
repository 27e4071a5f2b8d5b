/**
 * The default stack, synthesised once by test/lib/release-signaller.test.ts: the fan-out work
 * queue as deployed (docs/fan-out.md): the queue and its dead-letter queue with their alarms, the
 * workers' event source mapping (batch size, maximum concurrency, partial batch responses), the
 * visibility timeout rule, and exactly the SQS permissions the code and the mapping use.
 */
import { Capture, Match, type Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  onlyResource,
  signallerFunction,
  type SynthesisedDequeue,
  workQueue,
  functionStatementList,
} from '../synth-dequeue';

export function workQueueTests(synthesised: () => SynthesisedDequeue): void {
  let template: Template;
  beforeAll(() => {
    template = synthesised().template;
  });

  describe('the work queue', () => {
    it('keeps a batch invisible for six times the function timeout (15 minutes: 90), encrypted, TLS only', () => {
      const queue = workQueue(template);
      expect(queue.resource.Properties).toMatchObject({
        VisibilityTimeout: 6 * 900,
        SqsManagedSseEnabled: true,
        MessageRetentionPeriod: 86_400,
      });
      const policy = onlyResource(template, 'AWS::SQS::QueuePolicy', {
        Properties: { Queues: [{ Ref: queue.id }] },
      });
      expect(JSON.stringify(policy.resource.Properties.PolicyDocument)).toContain(
        '"aws:SecureTransport":"false"',
      );
    });

    it('moves an order to a dead-letter queue after 5 receives, and each arrival there notifies the topic, however many already wait', () => {
      const queue = workQueue(template);
      const dlqId = queue.resource.Properties.RedrivePolicy.deadLetterTargetArn['Fn::GetAtt'][0];
      expect(queue.resource.Properties.RedrivePolicy.maxReceiveCount).toBe(5);
      const dlq = template.toJSON().Resources[dlqId];
      expect(dlq.Properties).toMatchObject({
        SqsManagedSseEnabled: true,
        MessageRetentionPeriod: 14 * 86_400,
      });

      const depth = new Capture();
      const alarm = onlyResource(template, 'AWS::CloudWatch::Alarm', {
        Properties: { Metrics: Match.arrayWith([Match.objectLike({ MetricStat: depth })]) },
      });
      expect(depth.asObject()).toEqual({
        Metric: {
          Namespace: 'AWS/SQS',
          MetricName: 'ApproximateNumberOfMessagesVisible',
          Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [dlqId, 'QueueName'] } }],
        },
        Period: 300,
        Stat: 'Maximum',
      });
      const topic = onlyResource(template, 'AWS::SNS::Topic');
      expect(alarm.resource.Properties).toMatchObject({
        Threshold: 1,
        ComparisonOperator: 'GreaterThanOrEqualToThreshold',
        EvaluationPeriods: 2,
        DatapointsToAlarm: 1,
        TreatMissingData: 'notBreaching',
        AlarmActions: [{ Ref: topic.id }],
        OKActions: [{ Ref: topic.id }],
      });
      // Redrive does not count in NumberOfMessagesSent: the increase of the depth does, an idle
      // queue's missing points taken as 0.
      expect(alarm.resource.Properties.Metrics).toContainEqual(
        expect.objectContaining({ Expression: 'DIFF(FILL(depth, 0))', ReturnData: true }),
      );
    });

    it('page when an order has waited longer than one interval: the workers are behind or not running', () => {
      const queue = workQueue(template);
      const topic = onlyResource(template, 'AWS::SNS::Topic');
      template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        Namespace: 'AWS/SQS',
        MetricName: 'ApproximateAgeOfOldestMessage',
        Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [queue.id, 'QueueName'] } }],
        Statistic: 'Maximum',
        Threshold: 900,
        ComparisonOperator: 'GreaterThanThreshold',
        AlarmActions: [{ Ref: topic.id }],
        OKActions: [{ Ref: topic.id }],
      });
    });
  });

  describe('the workers', () => {
    it('are the function itself, fed 50 orders a batch (1 s window to fill it), at most 10 at once, with partial batch responses', () => {
      const queue = workQueue(template);
      const fn = signallerFunction(template);
      const mapping = onlyResource(template, 'AWS::Lambda::EventSourceMapping');
      expect(mapping.resource.Properties).toEqual({
        FunctionName: { Ref: fn.id },
        EventSourceArn: { 'Fn::GetAtt': [queue.id, 'Arn'] },
        BatchSize: 50,
        MaximumBatchingWindowInSeconds: 1,
        ScalingConfig: { MaximumConcurrency: 10 },
        FunctionResponseTypes: ['ReportBatchItemFailures'],
      });
      // Created after the role's policy: Lambda checks the permissions when it creates the mapping.
      const policy = onlyResource(template, 'AWS::IAM::Policy', {
        Properties: { Roles: [{ Ref: fn.resource.Properties.Role['Fn::GetAtt'][0] }] },
      });
      expect(mapping.resource.DependsOn).toContain(policy.id);
    });

    it('find the queue in DEQUEUE_WORK_QUEUE_URL', () => {
      const queue = workQueue(template);
      template.hasResourceProperties('AWS::Lambda::Function', {
        Handler: 'index.handler',
        Environment: { Variables: Match.objectLike({ DEQUEUE_WORK_QUEUE_URL: { Ref: queue.id } }) },
      });
    });
  });

  describe('least privilege on SQS', () => {
    it('the function may send to the work queue, the mapping receive from it, a worker hand orders back, nothing else (beside recording failed cycles)', () => {
      const queueArn = { 'Fn::GetAtt': [workQueue(template).id, 'Arn'] };
      const sqsStatements = functionStatementList(template).filter(
        (s) =>
          [s.Action].flat().some((a: string) => a.startsWith('sqs:')) &&
          s.Sid !== 'RecordFailedCycles',
      );
      expect(sqsStatements).toEqual([
        { Sid: 'QueueWorkOrders', Effect: 'Allow', Action: 'sqs:SendMessage', Resource: queueArn },
        {
          Sid: 'ReceiveWorkOrders',
          Effect: 'Allow',
          Action: ['sqs:DeleteMessage', 'sqs:GetQueueAttributes', 'sqs:ReceiveMessage'],
          Resource: queueArn,
        },
        {
          Sid: 'HandBackWorkOrders',
          Effect: 'Allow',
          Action: 'sqs:ChangeMessageVisibility',
          Resource: queueArn,
        },
      ]);
    });
  });
}
