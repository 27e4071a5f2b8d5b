/**
 * Each scheduled slot is counted exactly once and each due target signalled at most once per
 * counted cycle (never by two sessions at once: a cycle that meets another's session skips the
 * target as busy), however the deliveries arrive: the same scheduled time 20 times (Scheduler and
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
import { TARGET_BUSY } from '../../lambda/core/work-targets';
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

  it('20 deliveries of one scheduled time and 10 other times, concurrently: count 11, at most one signal per target per due cycle, one session at a time', async () => {
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

    // At most one signal per target per counted cycle; and, one session per target at a time
    // (target-lease.test.ts), a cycle that met another cycle's session to the target skipped it
    // as busy instead. Every due cycle did one or the other: the every-cycle target in all 11,
    // the other in cycles 1, 4, 7 and 10. One connection per signal, none besides.
    const all = results.flatMap((r) => r.results);
    const cyclesOf = (name: string, match: (r: (typeof all)[number]) => boolean) =>
      all
        .filter((r) => r.target === name && match(r))
        .map((r) => r.cycle)
        .sort((a, b) => a - b);
    const signalled = (name: string) => cyclesOf(name, (r) => r.outcome === 'signalled');
    const busy = (name: string) => cyclesOf(name, (r) => r.reason === TARGET_BUSY);
    const handled = (name: string) =>
      [...new Set([...signalled(name), ...busy(name)])].sort((a, b) => a - b);
    for (const name of ['every', 'third']) {
      expect(new Set(signalled(name)).size).toBe(signalled(name).length);
    }
    expect(handled('every')).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    expect(handled('third')).toEqual([1, 4, 7, 10]);
    expect(signalled('every').length).toBeGreaterThan(0);
    expect(everyCycle.connections).toHaveLength(signalled('every').length);
    expect(everyThird.connections).toHaveLength(signalled('third').length);
    expect(everyCycle.lines.filter((l) => l === 'ETRN every.example')).toHaveLength(
      signalled('every').length,
    );
    // Nothing failed: every other result is a skip that says why.
    const rest = all.filter((r) => r.outcome !== 'signalled');
    expect(
      rest.every(
        (r) =>
          r.outcome === 'skipped' &&
          (/^(already signalled in cycle|not due)/.test(r.reason ?? '') ||
            r.reason === TARGET_BUSY),
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
