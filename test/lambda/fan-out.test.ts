/**
 * Fan-out end to end on moto_server (SQS, DynamoDB, SSM): a scheduled cycle with more due targets
 * than one invocation takes on queues one work order per target; a small local poller plays the
 * SQS event source mapping (receive a batch, invoke the worker with an SQS event, delete what the
 * partial batch response does not name, leave the rest to reappear after the visibility timeout);
 * every due target is signalled exactly once, counted at the provider, although:
 * - the slot's event is delivered twice (a Scheduler retry: every order is queued twice);
 * - the first batch's response is lost (the function killed after its work: the whole batch
 *   comes back);
 * - two claims fail once (DynamoDB throttling): the worker hands those orders back;
 * - an unreadable message sits in the queue: it ends in the dead-letter queue.
 */
import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import {
  CreateQueueCommand,
  DeleteMessageBatchCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { DequeueError } from '../../lambda/core/errors';
import type { TargetResult } from '../../lambda/core/result';
import { depsFromEnvironment } from '../../lambda/deployed-adapters';
import { createHandler, type HandlerDeps } from '../../lambda/handler';
import type { WorkQueueRecord } from '../../lambda/work-queue-event';
import { createWorker } from '../../lambda/worker';
import { ScriptedProvider } from '../../peers/scripted-provider';
import { describeWithMotoServer, startMotoServer, type MotoServer } from '../servers/moto-server';
import { AwsWorld, CapturedOutput, contextWith, ENV, scheduledEvent, TABLE } from './aws-world';

const TARGETS = 12;
const BATCH_SIZE = 5;
/** Short, so that what is left in the queue comes back within the test. */
const VISIBILITY_SECONDS = 2;

describeWithMotoServer(
  'fan-out: a cycle too large for one run is signalled by queue-fed workers, each target once',
  () => {
    let moto: MotoServer;
    let world: AwsWorld;
    let sqs: SQSClient;
    let provider: ScriptedProvider;

    beforeAll(async () => {
      moto = await startMotoServer();
      world = new AwsWorld(moto);
      await world.reset();
      sqs = new SQSClient(moto.clientConfig);
      provider = await new ScriptedProvider({ extensions: ['ETRN'] }).start();
    });
    afterAll(async () => {
      await provider?.stop();
      await moto?.stop();
    });

    it('12 due targets over 5 a batch: signalled once each through duplicates, a lost response, failed claims', {
      timeout: 90_000,
    }, async () => {
      const dlq = await sqs.send(new CreateQueueCommand({ QueueName: 'dequeue-work-dlq' }));
      const dlqArn = (
        await sqs.send(
          new GetQueueAttributesCommand({ QueueUrl: dlq.QueueUrl, AttributeNames: ['QueueArn'] }),
        )
      ).Attributes!.QueueArn!;
      const queue = await sqs.send(
        new CreateQueueCommand({
          QueueName: 'dequeue-work',
          Attributes: {
            VisibilityTimeout: String(VISIBILITY_SECONDS),
            RedrivePolicy: JSON.stringify({ deadLetterTargetArn: dlqArn, maxReceiveCount: 3 }),
          },
        }),
      );
      const queueUrl = queue.QueueUrl!;

      await world.putSettings({ concurrency: 4, fanOut: { maxTargetsPerInvocation: 5 } });
      const names = Array.from({ length: TARGETS }, (_, i) => `t${String(i).padStart(2, '0')}`);
      for (const name of names)
        await world.putTarget(name, {
          name,
          host: '127.0.0.1',
          port: provider.port,
          tls: 'none',
          command: `ETRN ${name}.example`,
        });

      const deps: HandlerDeps = depsFromEnvironment(
        { ...ENV, DEQUEUE_WORK_QUEUE_URL: queueUrl },
        moto.clientConfig,
      );
      const coordinator = createHandler(deps);
      // Two claims fail once, as a throttled table would make them.
      const failOnce = new Set(['t03', 't07']);
      const worker = createWorker({
        ...deps,
        // What is handed back comes back as soon as what is left in the queue.
        handBackSeconds: VISIBILITY_SECONDS,
        counter: {
          count: (slot, signal) => deps.counter.count(slot, signal),
          peek: (signal) => deps.counter.peek(signal),
          claim: (cycle, target, signal) => {
            if (failOnce.delete(target))
              return Promise.reject(
                new DequeueError(
                  'temporary',
                  'cycle counter: DynamoDB PutItem failed: ProvisionedThroughputExceededException',
                ),
              );
            return deps.counter.claim!(cycle, target, signal);
          },
        },
      });

      const output = new CapturedOutput();
      const workerResults: TargetResult[] = [];
      let invocations = 0;
      let first, retry;
      try {
        const event = scheduledEvent('2026-03-01T10:00:00Z');
        first = await coordinator(event, contextWith());
        retry = await coordinator({ ...scheduledEvent('2026-03-01T10:00:00Z', 2) }, contextWith());
        await sqs.send(
          new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: '{"not": "a work order"}' }),
        );

        // The poller: what Lambda's event source mapping does, one batch at a time.
        for (let round = 0; round < 60; round++) {
          const received = await sqs.send(
            new ReceiveMessageCommand({
              QueueUrl: queueUrl,
              MaxNumberOfMessages: BATCH_SIZE,
              WaitTimeSeconds: 1,
              MessageSystemAttributeNames: ['All'],
            }),
          );
          const messages = received.Messages ?? [];
          if (messages.length === 0) {
            const attributes = (
              await sqs.send(
                new GetQueueAttributesCommand({
                  QueueUrl: queueUrl,
                  AttributeNames: [
                    'ApproximateNumberOfMessages',
                    'ApproximateNumberOfMessagesNotVisible',
                  ],
                }),
              )
            ).Attributes!;
            if (
              attributes.ApproximateNumberOfMessages === '0' &&
              attributes.ApproximateNumberOfMessagesNotVisible === '0'
            )
              break;
            continue;
          }
          const records: (WorkQueueRecord & Record<string, unknown>)[] = messages.map((m) => ({
            messageId: m.MessageId!,
            receiptHandle: m.ReceiptHandle!,
            body: m.Body!,
            attributes: m.Attributes ?? {},
            messageAttributes: {},
            md5OfBody: m.MD5OfBody!,
            eventSource: 'aws:sqs',
            eventSourceARN: 'arn:aws:sqs:us-east-1:123456789012:dequeue-work',
            awsRegion: 'us-east-1',
          }));
          const before = output.targetLines.length;
          const response = await worker({ Records: records }, contextWith());
          invocations++;
          workerResults.push(...(output.targetLines.slice(before) as unknown as TargetResult[]));
          // The first invocation's answer never reaches the mapping (killed after its work): the
          // whole batch comes back after the visibility timeout.
          if (invocations === 1) continue;
          const failed = new Set(response.batchItemFailures.map((f) => f.itemIdentifier));
          const done = messages.filter((m) => !failed.has(m.MessageId!));
          if (done.length) {
            await sqs.send(
              new DeleteMessageBatchCommand({
                QueueUrl: queueUrl,
                Entries: done.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })),
              }),
            );
          }
        }
      } finally {
        output.restore();
      }

      // The coordinator counted the slot once and queued every due target (twice: the retry too).
      expect(await world.counter()).toBe(1);
      expect(first.cycle).toBe(1);
      expect(retry.cycle).toBe(1);
      expect(first.results).toEqual([]);
      expect([...first.queued!].sort()).toEqual(names);
      expect([...retry.queued!].sort()).toEqual(names);

      // Each due target signalled exactly once, as the provider saw it.
      const etrns = provider.lines.filter((l) => l.startsWith('ETRN '));
      expect(etrns.sort()).toEqual(names.map((n) => `ETRN ${n}.example`));
      expect(provider.connections).toHaveLength(TARGETS);

      const signalled = workerResults
        .filter((r) => r.outcome === 'signalled')
        .map((r) => r.target)
        .sort();
      expect(signalled).toEqual(names);
      expect(workerResults.every((r) => r.cycle === 1)).toBe(true);
      // Everything else: the duplicate and redelivered orders skipped, the two failed claims reported.
      const rest = workerResults.filter((r) => r.outcome !== 'signalled');
      expect(
        rest
          .filter((r) => r.outcome === 'temporary-failure')
          .map((r) => r.target)
          .sort(),
      ).toEqual(['t03', 't07']);
      expect(
        rest
          .filter((r) => r.outcome !== 'temporary-failure')
          .every((r) => r.outcome === 'skipped' && r.reason === 'already signalled in cycle 1'),
      ).toBe(true);

      // Each target's status was recorded by the worker that signalled it.
      for (const name of names) {
        const item = await world.dynamodb.send(
          new GetItemCommand({
            TableName: TABLE,
            Key: { pk: { S: `status#${name}` } },
            ConsistentRead: true,
          }),
        );
        expect(item.Item?.lastOutcome?.S, name).toBe('signalled');
        expect(item.Item?.lastCycle?.N, name).toBe('1');
      }
      // FailingTargets was published by the workers, over their batches: 0, nothing failed for long.
      expect(output.emf.some((m) => 'FailingTargets' in m)).toBe(true);

      // The unreadable message was handed back every time and ended in the dead-letter queue.
      const dead = await sqs.send(
        new ReceiveMessageCommand({
          QueueUrl: dlq.QueueUrl,
          MaxNumberOfMessages: 10,
          WaitTimeSeconds: 1,
        }),
      );
      expect(dead.Messages?.map((m) => m.Body)).toEqual(['{"not": "a work order"}']);
    });
  },
);
