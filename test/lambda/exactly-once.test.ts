/**
 * Each scheduled slot is counted exactly once and each due target signalled exactly once per
 * counted cycle, however the deliveries arrive: the same scheduled time 20 times (Scheduler and
 * Lambda retries, each with a fresh execution id and a rising attempt number) together with 10
 * other scheduled times, all at once, each in its own "instance" (own SDK clients, own caches).
 *
 * moto_server runs serialised (peers/servers/moto-server.ts): one request at a time, as DynamoDB
 * runs each transaction isolated from every other request. Threaded, moto lets two transactions
 * pass the same condition now and then (the second test here shows what serialised gives), which
 * made this test fail under load for a reason no real table has. The deliveries still overlap
 * between requests, where the counter's read-then-transact races are: the test checks that some
 * transactions lost such a race and were retried.
 */
import {
  CreateTableCommand,
  DynamoDBClient,
  TransactWriteItemsCommand,
} from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { CycleResult } from '../../lambda/core/result';
import { describeWithMotoServer, startMotoServer, type MotoServer } from '../servers/moto-server';
import { ScriptedProvider } from '../../peers/scripted-provider';
import { AwsWorld, CapturedOutput, contextWith, scheduledEvent } from './aws-world';

describeWithMotoServer('exactly-once counting under duplicate and overlapping deliveries', () => {
  let moto: MotoServer;
  let world: AwsWorld;
  let everyCycle: ScriptedProvider;
  let everyThird: ScriptedProvider;

  beforeAll(async () => {
    moto = await startMotoServer({ serialised: true });
    world = new AwsWorld(moto);
    await world.reset();
    everyCycle = await new ScriptedProvider().start();
    everyThird = await new ScriptedProvider().start();
  });
  afterAll(async () => {
    await everyCycle?.stop();
    await everyThird?.stop();
    await moto?.stop();
  });

  it('20 deliveries of one scheduled time and 10 other times, concurrently: count 11, one signal per target per due cycle', async () => {
    await world.putTarget('every', {
      name: 'every',
      host: '127.0.0.1',
      port: everyCycle.port,
      tls: 'none',
      command: 'ETRN every.example',
    });
    await world.putTarget(
      'third',
      {
        name: 'third',
        host: '127.0.0.1',
        port: everyThird.port,
        tls: 'none',
        command: 'ETRN third.example',
        everyNthCycle: 3,
      },
      'SecureString',
    );

    const repeated = '2026-03-01T10:00:00Z';
    const others = Array.from(
      { length: 10 },
      (_, i) => `2026-03-01T10:${String(5 * (i + 1)).padStart(2, '0')}:00Z`,
    );
    const events = [
      ...Array.from({ length: 20 }, (_, i) => scheduledEvent(repeated, i + 1)),
      ...others.map((t) => scheduledEvent(t)),
    ];

    const output = new CapturedOutput();
    let results: CycleResult[];
    try {
      // Every delivery in its own instance, as overlapping invocations are in Lambda.
      results = await Promise.all(events.map((event) => world.handler()(event, contextWith())));
    } finally {
      output.restore();
    }

    expect(await world.counter()).toBe(11);
    const repeatedCycles = new Set(results.slice(0, 20).map((r) => r.cycle));
    expect(repeatedCycles.size).toBe(1);
    const cycles = [...repeatedCycles, ...results.slice(20).map((r) => r.cycle)].sort(
      (a, b) => a - b,
    );
    expect(cycles).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);

    // One connection per counted cycle for the every-cycle target, cycles 1, 4, 7, 10 for the other.
    expect(everyCycle.connections).toHaveLength(11);
    expect(everyThird.connections).toHaveLength(4);
    expect(everyCycle.lines.filter((l) => l === 'ETRN every.example')).toHaveLength(11);

    const signalled = (name: string) =>
      results
        .flatMap((r) => r.results)
        .filter((r) => r.target === name && r.outcome === 'signalled')
        .map((r) => r.cycle)
        .sort((a, b) => a - b);
    expect(signalled('every')).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    expect(signalled('third')).toEqual([1, 4, 7, 10]);
    // Nothing failed: every other result is a skip that says why.
    const rest = results.flatMap((r) => r.results).filter((r) => r.outcome !== 'signalled');
    expect(
      rest.every(
        (r) =>
          r.outcome === 'skipped' && /^(already signalled in cycle|not due)/.test(r.reason ?? ''),
      ),
    ).toBe(true);

    // The deliveries raced: transactions were cancelled (the slot counted by another delivery,
    // or the counter moved) and the losers went round again.
    const transactions = moto.served!.filter(
      (r) => r.operation === 'DynamoDB_20120810.TransactWriteItems',
    );
    expect(transactions.filter((r) => r.status === 200)).toHaveLength(11);
    expect(transactions.filter((r) => r.status === 400).length).toBeGreaterThan(0);
  });

  it("serialised moto gives DynamoDB's isolation: of 20 transactions racing for one condition, exactly one wins", async () => {
    const table = 'race';
    const db = new DynamoDBClient(moto.clientConfig);
    await db.send(
      new CreateTableCommand({
        TableName: table,
        AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }],
        KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
        BillingMode: 'PAY_PER_REQUEST',
      }),
    );
    const racers = Array.from({ length: 20 }, () => new DynamoDBClient(moto.clientConfig));
    try {
      const outcomes = await Promise.allSettled(
        racers.map((client, i) =>
          client.send(
            new TransactWriteItemsCommand({
              TransactItems: [
                {
                  Put: {
                    TableName: table,
                    Item: { pk: { S: `slot#${i}` } },
                    ConditionExpression: 'attribute_not_exists(pk)',
                  },
                },
                {
                  Update: {
                    TableName: table,
                    Key: { pk: { S: 'counter' } },
                    UpdateExpression: 'SET #cycle = :one',
                    ConditionExpression: 'attribute_not_exists(#cycle)',
                    ExpressionAttributeNames: { '#cycle': 'cycle' },
                    ExpressionAttributeValues: { ':one': { N: '1' } },
                  },
                },
              ],
            }),
          ),
        ),
      );
      expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
      expect(
        outcomes
          .filter((o) => o.status === 'rejected')
          .map((o) => ((o as PromiseRejectedResult).reason as Error).name),
      ).toEqual(Array(19).fill('TransactionCanceledException'));
    } finally {
      for (const client of [db, ...racers]) client.destroy();
    }
  });
});
