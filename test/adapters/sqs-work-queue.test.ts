/**
 * The SQS work queue: batches within the API's limits, failed entries sent again, nothing
 * dropped; hand-backs change the visibility of the receipts given, and say which they could not.
 */
import {
  ChangeMessageVisibilityBatchCommand,
  SendMessageBatchCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import {
  batchesOf,
  MAX_BATCH_BYTES,
  MAX_SEND_ROUNDS,
  SqsWorkQueue,
} from '../../lambda/adapters/sqs-work-queue';
import { parseSettings, parseTarget } from '../../lambda/core/config';
import { decodeWorkOrder, workOrderFor } from '../../lambda/core/fan-out';

const sqs = mockClient(SQSClient);
const client = new SQSClient({
  region: 'us-east-1',
  credentials: { accessKeyId: 'k', secretAccessKey: 's' },
});
const queue = () =>
  new SqsWorkQueue(client, {
    queueUrl: 'https://sqs.us-east-1.amazonaws.com/123456789012/work',
    pause: async () => undefined,
  });
const settings = parseSettings({}, 'test');
const orders = (n: number, command = 'ETRN x.test') =>
  Array.from({ length: n }, (_, i) =>
    workOrderFor(parseTarget({ name: `t${i}`, host: 'mx.example', command }, 'test'), {
      cycle: 4,
      claim: true,
      settings,
      now: Date.parse('2026-03-01T10:00:00Z'),
    }),
  );

beforeEach(() => sqs.reset());

describe('SqsWorkQueue', () => {
  it('sends 25 orders as batches of 10, 10 and 5, each message a readable order', async () => {
    sqs.on(SendMessageBatchCommand).resolves({ Successful: [], Failed: [] });
    expect(await queue().send(orders(25))).toEqual([]);
    const calls = sqs.commandCalls(SendMessageBatchCommand);
    expect(calls.map((c) => c.args[0].input.Entries!.length).sort()).toEqual([10, 10, 5]);
    const bodies = calls.flatMap((c) => c.args[0].input.Entries!.map((e) => e.MessageBody!));
    expect(bodies.map((b) => decodeWorkOrder(b, 'test').target).sort()).toEqual(
      orders(25)
        .map((o) => o.target)
        .sort(),
    );
  });

  it('keeps every batch under 256 KiB of bodies', () => {
    const batches = batchesOf(Array.from({ length: 12 }, () => ({ bytes: 100_000 })));
    expect(batches.map((b) => b.length)).toEqual([2, 2, 2, 2, 2, 2]);
    expect(batches.every((b) => b.reduce((n, e) => n + e.bytes, 0) <= MAX_BATCH_BYTES)).toBe(true);
  });

  it('sends again the entries SQS failed on its side, and reports a sender fault at once', async () => {
    let round = 0;
    sqs.on(SendMessageBatchCommand).callsFake((input: { Entries: { Id: string }[] }) => {
      round++;
      const failed =
        round === 1
          ? [
              { Id: input.Entries[0]!.Id, SenderFault: false, Code: 'InternalError' },
              {
                Id: input.Entries[1]!.Id,
                SenderFault: true,
                Code: 'InvalidMessageContents',
                Message: 'bad',
              },
            ]
          : [];
      return { Successful: [], Failed: failed };
    });
    const refused = await queue().send(orders(3));
    expect(refused.map((r) => [r.target, r.error.kind, r.error.message])).toEqual([
      ['t1', 'config', 'SQS refused its work order: InvalidMessageContents: bad'],
    ]);
    expect(
      sqs.commandCalls(SendMessageBatchCommand).map((c) => c.args[0].input.Entries!.length),
    ).toEqual([3, 1]);
  });

  it(`gives up after ${MAX_SEND_ROUNDS} rounds and names every order not queued`, async () => {
    sqs.on(SendMessageBatchCommand).callsFake((input: { Entries: { Id: string }[] }) => ({
      Successful: [],
      Failed: input.Entries.map((e) => ({
        Id: e.Id,
        SenderFault: false,
        Code: 'ServiceUnavailable',
      })),
    }));
    const refused = await queue().send(orders(2));
    expect(refused.map((r) => [r.target, r.error.kind])).toEqual([
      ['t0', 'temporary'],
      ['t1', 'temporary'],
    ]);
    expect(sqs.commandCalls(SendMessageBatchCommand)).toHaveLength(MAX_SEND_ROUNDS);
  });

  it('a failed call refuses its whole batch with the reason, the other batches still go', async () => {
    let calls = 0;
    sqs.on(SendMessageBatchCommand).callsFake(() => {
      if (++calls === 1)
        throw Object.assign(new Error('Rate exceeded'), {
          name: 'ThrottlingException',
          $fault: 'client',
        });
      return { Successful: [], Failed: [] };
    });
    const refused = await queue().send(orders(15));
    expect(refused).toHaveLength(10);
    expect(refused[0]!.error).toMatchObject({
      kind: 'temporary',
      message: 'SQS SendMessageBatch failed: ThrottlingException: Rate exceeded',
    });
  });

  it('refuses an order too large for one message instead of sending it', async () => {
    sqs.on(SendMessageBatchCommand).resolves({ Successful: [], Failed: [] });
    const huge = orders(1).map((o) => ({ ...o, slot: 'x'.repeat(MAX_BATCH_BYTES) }));
    const refused = await queue().send(huge);
    expect(refused[0]!.error.message).toMatch(/more than an SQS message holds/);
    expect(sqs.commandCalls(SendMessageBatchCommand)).toHaveLength(0);
  });

  it('hands back 12 receipts as batches of 10 and 2, naming the ones SQS could not change', async () => {
    sqs
      .on(ChangeMessageVisibilityBatchCommand)
      .callsFake((input: { Entries: { Id: string }[] }) => ({
        Successful: input.Entries.slice(1).map((e) => ({ Id: e.Id })),
        Failed: [
          {
            Id: input.Entries[0]!.Id,
            SenderFault: true,
            Code: 'ReceiptHandleIsInvalid',
            Message: 'gone',
          },
        ],
      }));
    const handed = Array.from({ length: 12 }, (_, i) => ({
      messageId: `m${i}`,
      receiptHandle: `rh${i}`,
    }));
    const failures = await queue().handBack(handed, 30);
    const calls = sqs.commandCalls(ChangeMessageVisibilityBatchCommand);
    expect(calls.map((c) => c.args[0].input.Entries!.length).sort()).toEqual([10, 2]);
    expect(
      calls.flatMap((c) =>
        c.args[0].input.Entries!.map((e) => [e.ReceiptHandle, e.VisibilityTimeout]),
      ),
    ).toEqual(handed.map((h) => [h.receiptHandle, 30]));
    expect(failures.map((f) => f.messageId).sort()).toEqual(['m0', 'm10']);
    expect(failures[0]!.error).toMatchObject({
      kind: 'config',
      message: 'SQS did not change its visibility: ReceiptHandleIsInvalid: gone',
    });
  });

  it('a hand-back call that fails names every receipt of its batch, never throws', async () => {
    sqs.on(ChangeMessageVisibilityBatchCommand).rejects(
      Object.assign(new Error('Rate exceeded'), {
        name: 'ThrottlingException',
        $fault: 'client',
      }),
    );
    const failures = await queue().handBack([{ messageId: 'm1', receiptHandle: 'rh1' }], 30);
    expect(failures).toEqual([
      {
        messageId: 'm1',
        error: expect.objectContaining({
          kind: 'temporary',
          message: 'SQS ChangeMessageVisibilityBatch failed: ThrottlingException: Rate exceeded',
        }),
      },
    ]);
  });
});
