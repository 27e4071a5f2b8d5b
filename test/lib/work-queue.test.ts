/**
 * The fan-out work queue as deployed (docs/fan-out.md): the queue and its dead-letter queue with
 * an alarm, the workers' event source mapping (batch size, maximum concurrency, partial batch
 * responses), the visibility timeout rule, and exactly the SQS permissions the code and the
 * mapping use.
 */
import { Duration, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ReleaseSignaller, type ReleaseSignallerProps } from '../../lib/release-signaller';
import { ReleaseSignallerPropsError } from '../../lib/release-signaller-checks';
import {
  FIXTURE_ENTRY,
  onlyResource,
  signallerFunction,
  synthDequeue,
  testApp,
  type SynthesisedDequeue,
} from './synth-dequeue';

let synth: SynthesisedDequeue;
let template: Template;

beforeAll(() => {
  synth = synthDequeue();
  template = synth.template;
});
afterAll(() => synth?.dispose());

function signallerTemplate(props: ReleaseSignallerProps): Template {
  const app = testApp();
  const stack = new Stack(app, 'Host');
  new ReleaseSignaller(stack, 'Dequeue', { entry: FIXTURE_ENTRY, ...props });
  return Template.fromStack(stack);
}

/** The work queue: the queue with a redrive policy (the other two are dead-letter queues). */
const workQueue = (t: Template) =>
  onlyResource(t, 'AWS::SQS::Queue', { Properties: { RedrivePolicy: Match.anyValue() } });

function roleStatements(t: Template): any[] {
  const fn = signallerFunction(t);
  const roleId = fn.resource.Properties.Role['Fn::GetAtt'][0];
  const policy = onlyResource(t, 'AWS::IAM::Policy', { Properties: { Roles: [{ Ref: roleId }] } });
  return policy.resource.Properties.PolicyDocument.Statement;
}

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

  it('moves an order to a dead-letter queue after 3 receives, and an alarm on it notifies the topic', () => {
    const queue = workQueue(template);
    const dlqId = queue.resource.Properties.RedrivePolicy.deadLetterTargetArn['Fn::GetAtt'][0];
    expect(queue.resource.Properties.RedrivePolicy.maxReceiveCount).toBe(3);
    const dlq = template.toJSON().Resources[dlqId];
    expect(dlq.Properties).toMatchObject({
      SqsManagedSseEnabled: true,
      MessageRetentionPeriod: 14 * 86_400,
    });

    const alarm = onlyResource(template, 'AWS::CloudWatch::Alarm', {
      Properties: {
        MetricName: 'ApproximateNumberOfMessagesVisible',
        Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [dlqId, 'QueueName'] } }],
      },
    });
    const topic = onlyResource(template, 'AWS::SNS::Topic');
    expect(alarm.resource.Properties).toMatchObject({
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      Statistic: 'Maximum',
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

  it('take their batch size, concurrency and receive count from the props; the visibility timeout follows the function timeout', () => {
    const t = signallerTemplate({
      timeout: Duration.minutes(10),
      workerBatchSize: 4,
      workerMaxConcurrency: 20,
      workerMaxReceiveCount: 5,
    });
    t.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      BatchSize: 4,
      MaximumBatchingWindowInSeconds: Match.absent(),
      ScalingConfig: { MaximumConcurrency: 20 },
    });
    expect(workQueue(t).resource.Properties.RedrivePolicy.maxReceiveCount).toBe(5);
    expect(workQueue(t).resource.Properties.VisibilityTimeout).toBe(6 * 600);
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
  it('the function may send to the work queue and the mapping receive from it, nothing else', () => {
    const queueArn = { 'Fn::GetAtt': [workQueue(template).id, 'Arn'] };
    const sqsStatements = roleStatements(template).filter((s) =>
      [s.Action].flat().some((a: string) => a.startsWith('sqs:')),
    );
    expect(sqsStatements).toEqual([
      { Sid: 'QueueWorkOrders', Effect: 'Allow', Action: 'sqs:SendMessage', Resource: queueArn },
      {
        Sid: 'ReceiveWorkOrders',
        Effect: 'Allow',
        Action: ['sqs:DeleteMessage', 'sqs:GetQueueAttributes', 'sqs:ReceiveMessage'],
        Resource: queueArn,
      },
    ]);
  });
});

describe('without fan-out', () => {
  it('there is no work queue, no mapping, no SQS permission and no queue URL', () => {
    const t = signallerTemplate({ fanOut: false });
    expect(
      Object.keys(
        t.findResources('AWS::SQS::Queue', { Properties: { RedrivePolicy: Match.anyValue() } }),
      ),
    ).toEqual([]);
    t.resourceCountIs('AWS::Lambda::EventSourceMapping', 0);
    expect(
      roleStatements(t)
        .flatMap((s) => [s.Action].flat())
        .filter((a: string) => a.startsWith('sqs:')),
    ).toEqual([]);
    const fn = signallerFunction(t);
    expect(fn.resource.Properties.Environment.Variables.DEQUEUE_WORK_QUEUE_URL).toBeUndefined();
  });

  it.each<[ReleaseSignallerProps, string]>([
    [{ workerBatchSize: 101 }, '`workerBatchSize` must be a whole number from 1 to 100, got 101.'],
    [
      { workerMaxConcurrency: 1 },
      '`workerMaxConcurrency` must be a whole number from 2 to 1000, got 1.',
    ],
    [
      { fanOut: false, workerBatchSize: 5 },
      'they need `fanOut` (the default), not `fanOut: false`.',
    ],
  ])('impossible worker props are refused: %j', (props, message) => {
    expect(() => signallerTemplate(props)).toThrow(ReleaseSignallerPropsError);
    expect(() => signallerTemplate(props)).toThrow(message);
  });
});
