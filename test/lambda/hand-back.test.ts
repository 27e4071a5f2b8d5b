/**
 * A handed-back work order comes back soon, on moto_server (SQS, DynamoDB, SSM). The queue has
 * the deployed visibility timeout (6 x 900 s, 90 minutes: longer than an order lives, 3600 s by
 * default), so an order left to it would only ever be reported expired. The worker makes the
 * order it hands back visible again in HAND_BACK seconds (ChangeMessageVisibility): a poller that
 * plays the event source mapping receives it again within that time, and the next worker signals
 * the target, once, before the order expires.
 *
 * The test's hand-back is 3 s to keep it quick; HAND_BACK_SECONDS=30 measures the deployed
 * default (docs/fan-out.md quotes the figure).
 */
import {
  CreateQueueCommand,
  DeleteMessageBatchCommand,
  type Message,
  ReceiveMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { DequeueError } from '../../lambda/core/errors';
import { decodeWorkOrder } from '../../lambda/core/fan-out';
import { depsFromEnvironment } from '../../lambda/deployed-adapters';
import { createHandler } from '../../lambda/handler';
import type { WorkQueueRecord } from '../../lambda/work-queue-event';
import { createWorker } from '../../lambda/worker';
import { ScriptedProvider } from '../../peers/scripted-provider';
import { describeWithMotoServer, type MotoServer, startMotoServer } from '../servers/moto-server';
import { AwsWorld, CapturedOutput, contextWith, ENV, scheduledEvent } from './aws-world';

const HAND_BACK = Number(process.env.HAND_BACK_SECONDS ?? 3);
/** The deployed queue's: six times the function's default timeout of 900 s. */
const DEPLOYED_VISIBILITY_SECONDS = 6 * 900;

describeWithMotoServer('a handed-back work order', () => {
  let moto: MotoServer;
  let sqs: SQSClient;
  let provider: ScriptedProvider;

  beforeAll(async () => {
    moto = await startMotoServer();
    await new AwsWorld(moto).reset();
    sqs = new SQSClient(moto.clientConfig);
    provider = await new ScriptedProvider({ extensions: ['ETRN'] }).start();
  });
  afterAll(async () => {
    sqs?.destroy();
    await provider?.stop();
    await moto?.stop();
  });

  it(`is received again ${HAND_BACK} s after it was handed back, not the queue's ${DEPLOYED_VISIBILITY_SECONDS} s, and signalled once before it expires`, {
    timeout: 30_000 + HAND_BACK * 1000,
  }, async () => {
    const world = new AwsWorld(moto);
    const { QueueUrl: queueUrl } = await sqs.send(
      new CreateQueueCommand({
        QueueName: 'dequeue-work',
        Attributes: { VisibilityTimeout: String(DEPLOYED_VISIBILITY_SECONDS) },
      }),
    );
    await world.putSettings({ fanOut: { maxTargetsPerInvocation: 1 } });
    for (const name of ['early', 'late'])
      await world.putTarget(name, {
        name,
        host: '127.0.0.1',
        port: provider.port,
        tls: 'none',
        command: `ETRN ${name}.example`,
      });
    const deps = depsFromEnvironment(
      { ...ENV, DEQUEUE_WORK_QUEUE_URL: queueUrl },
      moto.clientConfig,
    );
    // The claim of 'late' fails once, as a throttled table makes it: the worker hands it back.
    let throttled = false;
    const worker = createWorker({
      ...deps,
      handBackSeconds: HAND_BACK,
      counter: {
        count: (slot, signal) => deps.counter.count(slot, signal),
        peek: (signal) => deps.counter.peek(signal),
        claim: (cycle, target, signal) => {
          if (target === 'late' && !throttled) {
            throttled = true;
            return Promise.reject(
              new DequeueError(
                'temporary',
                'cycle counter: DynamoDB PutItem failed: ProvisionedThroughputExceededException',
              ),
            );
          }
          return deps.counter.claim!(cycle, target, signal);
        },
      },
    });
    /** ReceiveMessage as the mapping does it: the queue's own visibility timeout. */
    const receive = async (wait: number): Promise<Message[]> =>
      (
        await sqs.send(
          new ReceiveMessageCommand({
            QueueUrl: queueUrl,
            MaxNumberOfMessages: 10,
            WaitTimeSeconds: wait,
            MessageSystemAttributeNames: ['ApproximateReceiveCount'],
          }),
        )
      ).Messages ?? [];
    const eventOf = (messages: readonly Message[]): { Records: WorkQueueRecord[] } => ({
      Records: messages.map((m) => ({
        messageId: m.MessageId!,
        receiptHandle: m.ReceiptHandle!,
        body: m.Body!,
        eventSource: 'aws:sqs',
      })),
    });
    const settle = async (messages: readonly Message[], failed: ReadonlySet<string>) => {
      const done = messages.filter((m) => !failed.has(m.MessageId!));
      if (done.length)
        await sqs.send(
          new DeleteMessageBatchCommand({
            QueueUrl: queueUrl,
            Entries: done.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })),
          }),
        );
    };

    const output = new CapturedOutput();
    let measuredMs: number;
    let again: Message[] = [];
    try {
      const coordinator = await createHandler(deps)(
        scheduledEvent('2026-03-01T10:00:00Z'),
        contextWith(),
      );
      expect([...coordinator.queued!].sort()).toEqual(['early', 'late']);

      const first: Message[] = [];
      while (first.length < 2) first.push(...(await receive(1)));
      const response = await worker(eventOf(first), contextWith());
      const handedBackAt = Date.now();
      const lateId = first.find((m) => decodeWorkOrder(m.Body!, 'order').target === 'late')!
        .MessageId!;
      expect(response.batchItemFailures).toEqual([{ itemIdentifier: lateId }]);
      await settle(first, new Set([lateId]));

      // Polled every 100 ms: the time from the hand-back to the order's next receipt.
      const giveUp = handedBackAt + (HAND_BACK + 10) * 1000;
      while (again.length === 0 && Date.now() < giveUp) {
        again = await receive(0);
        if (again.length === 0) await new Promise((r) => setTimeout(r, 100));
      }
      measuredMs = Date.now() - handedBackAt;
      console.info(
        `hand-back of ${HAND_BACK} s on moto_server: received again ${measuredMs} ms after the worker answered`,
      );
      expect(again.map((m) => m.MessageId)).toEqual([lateId]);
      expect(again[0]!.Attributes?.ApproximateReceiveCount).toBe('2');

      const second = await worker(eventOf(again), contextWith());
      expect(second.batchItemFailures).toEqual([]);
      await settle(again, new Set());
    } finally {
      output.restore();
    }
    // Back after the hand-back's seconds (less the poll's step), long before the queue's own.
    expect(measuredMs).toBeGreaterThanOrEqual(HAND_BACK * 1000 - 1_000);
    expect(measuredMs).toBeLessThan((HAND_BACK + 5) * 1000);
    expect(output.records.find((r) => r.message === 'work orders handed back')).toMatchObject({
      messageIds: [again[0]!.MessageId],
      visibleAgainInSeconds: HAND_BACK,
    });
    // Each target signalled once, 'late' by the second worker, before its order expired.
    const results = output.targetLines.map((l) => [l.target, l.outcome]).sort();
    expect(results).toEqual([
      ['early', 'signalled'],
      ['late', 'signalled'],
      ['late', 'temporary-failure'],
    ]);
    expect(provider.lines.filter((l) => l.startsWith('ETRN ')).sort()).toEqual([
      'ETRN early.example',
      'ETRN late.example',
    ]);
  });
});
