import {
  ConditionalCheckFailedException,
  DynamoDBClient,
  DynamoDBServiceException,
  GetItemCommand,
  PutItemCommand,
  TransactionCanceledException,
  TransactWriteItemsCommand,
  UpdateItemCommand,
  type CancellationReason,
} from '@aws-sdk/client-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { DynamoDbCycleCounter } from '../../lambda/adapters/dynamodb-counter';
import { DequeueError } from '../../lambda/core/errors';

const ddb = mockClient(DynamoDBClient);
const client = new DynamoDBClient({
  region: 'us-east-1',
  credentials: { accessKeyId: 'k', secretAccessKey: 's' },
});
const NOW = Date.UTC(2026, 0, 1);
const counter = (maxAttempts?: number) =>
  new DynamoDbCycleCounter(client, {
    tableName: 'counter-table',
    now: () => NOW,
    sleep: async () => undefined,
    maxAttempts,
  });

const cancelled = (...codes: string[]) =>
  new TransactionCanceledException({
    $metadata: {},
    message: 'Transaction cancelled',
    CancellationReasons: codes.map((Code): CancellationReason => ({ Code })),
  });

/** GetItem answers from a table held in a Map. */
function table(items: Record<string, number>): void {
  ddb.on(GetItemCommand).callsFake((input: { Key: { pk: { S: string } } }) => {
    const cycle = items[input.Key.pk.S];
    return {
      Item: cycle === undefined ? undefined : { pk: input.Key.pk, cycle: { N: String(cycle) } },
    };
  });
}

beforeEach(() => ddb.reset());

describe('DynamoDbCycleCounter.count(slot)', () => {
  it('counts a new slot in one transaction: slot item if absent, counter from N to N+1', async () => {
    table({ counter: 6 });
    ddb.on(TransactWriteItemsCommand).resolves({});
    expect(await counter().count('arn:sched#2026-01-01T00:00:00Z')).toEqual({
      cycle: 7,
      counted: true,
    });

    const reads = ddb.commandCalls(GetItemCommand).map((c) => c.args[0].input);
    expect(reads.map((r) => [r.Key!.pk!.S, r.ConsistentRead])).toEqual([
      ['slot#arn:sched#2026-01-01T00:00:00Z', true],
      ['counter', true],
    ]);
    const [put, update] =
      ddb.commandCalls(TransactWriteItemsCommand)[0]!.args[0].input.TransactItems!;
    expect(put!.Put).toEqual({
      TableName: 'counter-table',
      Item: {
        pk: { S: 'slot#arn:sched#2026-01-01T00:00:00Z' },
        cycle: { N: '7' },
        nonce: { S: expect.stringMatching(/^[0-9a-f-]{36}$/) },
        countedAt: { S: '2026-01-01T00:00:00.000Z' },
        expiresAt: { N: String(NOW / 1000 + 90 * 86_400) },
      },
      ConditionExpression: 'attribute_not_exists(pk)',
      ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
    });
    expect(update!.Update).toMatchObject({
      Key: { pk: { S: 'counter' } },
      UpdateExpression: 'SET #cycle = :next',
      ConditionExpression: '#cycle = :current',
      ExpressionAttributeValues: { ':next': { N: '7' }, ':current': { N: '6' } },
    });
  });

  it('starts from nothing: the first slot is cycle 1 and the counter may not exist yet', async () => {
    table({});
    ddb.on(TransactWriteItemsCommand).resolves({});
    expect(await counter().count('s')).toEqual({ cycle: 1, counted: true });
    const update =
      ddb.commandCalls(TransactWriteItemsCommand)[0]!.args[0].input.TransactItems![1]!.Update!;
    expect(update.ConditionExpression).toBe('attribute_not_exists(#cycle) OR #cycle = :current');
  });

  it('a slot already counted returns its cycle without writing', async () => {
    table({ 'slot#s': 4, counter: 9 });
    expect(await counter().count('s')).toEqual({ cycle: 4, counted: false });
    expect(ddb.commandCalls(TransactWriteItemsCommand)).toHaveLength(0);
  });

  it("losing the race for the same slot reads the winner's cycle back", async () => {
    const items: Record<string, number> = { counter: 2 };
    table(items);
    ddb.on(TransactWriteItemsCommand).callsFake(() => {
      items['slot#s'] = 3; // the other delivery won between our reads and our write
      items.counter = 3;
      throw cancelled('ConditionalCheckFailed', 'ConditionalCheckFailed');
    });
    expect(await counter().count('s')).toEqual({ cycle: 3, counted: false });
    expect(ddb.commandCalls(TransactWriteItemsCommand)).toHaveLength(1);
  });

  it('a slot met with our own nonce is our count (the SDK sent our transaction again)', async () => {
    const items: Record<string, number> = { counter: 2 };
    table(items);
    ddb.on(TransactWriteItemsCommand).callsFake((input) => {
      // The first try went through, its answer was lost; this is the SDK's retry of it.
      const put = input.TransactItems[0].Put;
      items.counter = 3;
      throw new TransactionCanceledException({
        $metadata: {},
        message: 'Transaction cancelled',
        CancellationReasons: [
          { Code: 'ConditionalCheckFailed', Item: put.Item },
          { Code: 'ConditionalCheckFailed' },
        ],
      });
    });
    expect(await counter().count('s')).toEqual({ cycle: 3, counted: true });
  });

  it("a slot met with another nonce is another delivery's count", async () => {
    const items: Record<string, number> = { counter: 2 };
    table(items);
    ddb.on(TransactWriteItemsCommand).callsFake(() => {
      items['slot#s'] = 3;
      items.counter = 3;
      throw new TransactionCanceledException({
        $metadata: {},
        message: 'Transaction cancelled',
        CancellationReasons: [
          {
            Code: 'ConditionalCheckFailed',
            Item: { pk: { S: 'slot#s' }, cycle: { N: '3' }, nonce: { S: 'theirs' } },
          },
          { Code: 'ConditionalCheckFailed' },
        ],
      });
    });
    expect(await counter().count('s')).toEqual({ cycle: 3, counted: false });
  });

  it('retries when another slot moved the counter, and counts on the fresh value', async () => {
    const items: Record<string, number> = { counter: 2 };
    table(items);
    ddb
      .on(TransactWriteItemsCommand)
      .callsFakeOnce(() => {
        items.counter = 3;
        throw cancelled('None', 'ConditionalCheckFailed');
      })
      .callsFakeOnce(() => {
        throw cancelled('None', 'TransactionConflict');
      })
      .resolves({});
    expect(await counter().count('s')).toEqual({ cycle: 4, counted: true });
    const transactions = ddb
      .commandCalls(TransactWriteItemsCommand)
      .map((c) => c.args[0].input.TransactItems![1]!.Update!.ExpressionAttributeValues);
    expect(transactions).toEqual([
      { ':next': { N: '3' }, ':current': { N: '2' } },
      { ':next': { N: '4' }, ':current': { N: '3' } },
      { ':next': { N: '4' }, ':current': { N: '3' } },
    ]);
  });

  it('gives up after a bounded number of rounds with a temporary error', async () => {
    table({ counter: 1 });
    ddb.on(TransactWriteItemsCommand).rejects(cancelled('None', 'ConditionalCheckFailed'));
    const e = await counter(3)
      .count('s')
      .catch((err: unknown) => err);
    expect(e).toBeInstanceOf(DequeueError);
    expect((e as DequeueError).kind).toBe('temporary');
    expect((e as Error).message).toBe(
      'cycle counter in counter-table: slot s could not be counted in 3 attempts (the counter kept moving)',
    );
    expect(ddb.commandCalls(TransactWriteItemsCommand)).toHaveLength(3);
  });

  it('reports a DynamoDB error with the table and operation', async () => {
    ddb.on(GetItemCommand).rejects(
      new DynamoDBServiceException({
        name: 'ResourceNotFoundException',
        $fault: 'client',
        $metadata: { httpStatusCode: 400 },
        message: 'Requested resource not found',
      }),
    );
    const e = (await counter()
      .count('s')
      .catch((err: unknown) => err)) as DequeueError;
    expect(e.kind).toBe('config');
    expect(e.message).toBe(
      'cycle counter: DynamoDB GetItem on counter-table failed: ResourceNotFoundException: Requested resource not found',
    );
  });
});

describe('DynamoDbCycleCounter: unscheduled runs, peek, claims', () => {
  it('counts an unscheduled run through a slot of its own, made up for the call', async () => {
    table({ counter: 11 });
    ddb.on(TransactWriteItemsCommand).resolves({});
    expect(await counter().count()).toEqual({ cycle: 12, counted: true });
    expect(await counter().count()).toEqual({ cycle: 12, counted: true });
    const slots = ddb
      .commandCalls(TransactWriteItemsCommand)
      .map((c) => c.args[0].input.TransactItems![0]!.Put!.Item!.pk!.S!);
    // Two runs, two slots: each run is counted, neither can be taken for the other.
    expect(slots).toHaveLength(2);
    for (const slot of slots) expect(slot).toMatch(/^slot#run#[0-9a-f-]{36}$/);
    expect(slots[0]).not.toBe(slots[1]);
    expect(ddb.commandCalls(UpdateItemCommand)).toEqual([]);
  });

  it('peek reads the counter consistently; 0 before the first cycle', async () => {
    table({});
    expect(await counter().peek()).toBe(0);
    table({ counter: 5 });
    expect(await counter().peek()).toBe(5);
  });

  it('claim is a conditional put with a TTL; the second claim of the same target and cycle loses', async () => {
    ddb
      .on(PutItemCommand)
      .resolvesOnce({})
      .rejects(
        new ConditionalCheckFailedException({
          $metadata: {},
          message: 'The conditional request failed',
        }),
      );
    const c = counter();
    expect(await c.claim(7, 'isp-etrn')).toBe(true);
    expect(await c.claim(7, 'isp-etrn')).toBe(false);
    expect(ddb.commandCalls(PutItemCommand)[0]!.args[0].input).toEqual({
      TableName: 'counter-table',
      Item: {
        pk: { S: 'claim#7#isp-etrn' },
        nonce: { S: expect.stringMatching(/^[0-9a-f-]{36}$/) },
        claimedAt: { S: '2026-01-01T00:00:00.000Z' },
        expiresAt: { N: String(NOW / 1000 + 7 * 86_400) },
      },
      ConditionExpression: 'attribute_not_exists(pk)',
      ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
    });
  });

  it('a claim met with our own nonce is ours (the SDK sent it again); another nonce is not', async () => {
    ddb
      .on(PutItemCommand)
      .callsFakeOnce((input) => {
        throw new ConditionalCheckFailedException({
          $metadata: {},
          message: 'The conditional request failed',
          Item: input.Item,
        });
      })
      .callsFakeOnce((input) => {
        throw new ConditionalCheckFailedException({
          $metadata: {},
          message: 'The conditional request failed',
          Item: { ...input.Item, nonce: { S: 'another-run' } },
        });
      });
    const c = counter();
    expect(await c.claim(7, 'isp-etrn')).toBe(true);
    expect(await c.claim(7, 'isp-etrn')).toBe(false);
  });
});
