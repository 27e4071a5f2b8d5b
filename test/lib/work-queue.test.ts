/**
 * The fan-out work queue shaped by ReleaseSignaller's props: the workers' own settings, no work
 * queue at all, impossible props refused. The work queue of the default stack is tested with it
 * (test/lib/default-stack/work-queue.ts).
 */
import { Duration, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { describe, expect, it } from 'vitest';
import { ReleaseSignaller, type ReleaseSignallerProps } from '../../lib/release-signaller';
import { ReleaseSignallerPropsError } from '../../lib/release-signaller-checks';
import {
  FIXTURE_ENTRY,
  signallerFunction,
  testApp,
  workQueue,
  functionStatementList,
} from './synth-dequeue';

function signallerTemplate(props: ReleaseSignallerProps): Template {
  const app = testApp({}, { bundle: false });
  const stack = new Stack(app, 'Host');
  new ReleaseSignaller(stack, 'Dequeue', { entry: FIXTURE_ENTRY, ...props });
  return Template.fromStack(stack);
}

describe('the workers with props of their own', () => {
  it('take their batch size, concurrency and receive count from the props; the visibility timeout follows the function timeout', () => {
    const t = signallerTemplate({
      timeout: Duration.minutes(10),
      workerBatchSize: 4,
      workerMaxConcurrency: 20,
      workerMaxReceiveCount: 7,
    });
    t.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      BatchSize: 4,
      MaximumBatchingWindowInSeconds: Match.absent(),
      ScalingConfig: { MaximumConcurrency: 20 },
    });
    expect(workQueue(t).resource.Properties.RedrivePolicy.maxReceiveCount).toBe(7);
    expect(workQueue(t).resource.Properties.VisibilityTimeout).toBe(6 * 600);
  });
});

describe('without fan-out', () => {
  it('there is no work queue, no mapping, no SQS permission but the failed-cycle record, no queue URL, and 2 executions reserved', () => {
    const t = signallerTemplate({ fanOut: false });
    expect(
      Object.keys(
        t.findResources('AWS::SQS::Queue', { Properties: { RedrivePolicy: Match.anyValue() } }),
      ),
    ).toEqual([]);
    t.resourceCountIs('AWS::Lambda::EventSourceMapping', 0);
    expect(
      functionStatementList(t)
        .filter((s) => [s.Action].flat().some((a: string) => a.startsWith('sqs:')))
        .map((s) => s.Sid),
    ).toEqual(['RecordFailedCycles']);
    const fn = signallerFunction(t);
    expect(fn.resource.Properties.ReservedConcurrentExecutions).toBe(2);
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
