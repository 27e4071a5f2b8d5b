/**
 * One session per target at a time (core/ports.ts TargetLeases, adapters/dynamodb-target-leases.ts):
 * a cycle still talking to a provider when the next cycle starts keeps the target, and the next
 * cycle leaves it alone instead of opening a second session (Exim would answer it `458 already
 * processing`, counted as a failure). On moto_server, with the deployed adapters; the provider
 * holds the first ETRN's reply until the test lets it go, so the overlap is certain, not timed.
 */
import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DynamoDbTargetLeases } from '../../lambda/adapters/dynamodb-target-leases';
import { TARGET_BUSY } from '../../lambda/core/work-targets';
import { ScriptedProvider } from '../../peers/scripted-provider';
import { describeWithMotoServer, startMotoServer, type MotoServer } from '../servers/moto-server';
import { AwsWorld, CapturedOutput, contextWith, scheduledEvent, TABLE } from './aws-world';

describeWithMotoServer('one session per target at a time', () => {
  let moto: MotoServer;
  let world: AwsWorld;
  let provider: ScriptedProvider;
  /** Resolves when the provider has the ETRN it is holding; `answer` lets the reply go. */
  let etrnArrived: Promise<void>;
  let answer: () => void;
  let arrived: () => void;
  let hold = true;

  beforeAll(async () => {
    moto = await startMotoServer();
    world = new AwsWorld(moto);
    provider = await new ScriptedProvider({
      extensions: ['ETRN'],
      onLine: async (line, conn) => {
        if (!line.startsWith('ETRN') || !hold) return false;
        hold = false;
        arrived();
        await new Promise<void>((resolve) => {
          answer = resolve;
        });
        conn.reply('250 Queuing started');
        return true;
      },
    }).start();
  });
  afterAll(async () => {
    answer?.();
    await provider?.stop();
    await moto?.stop();
  });
  beforeEach(async () => {
    await world.reset();
    await world.putTarget('isp', {
      host: '127.0.0.1',
      port: provider.port,
      tls: 'none',
      command: 'ETRN customer.test',
    });
    etrnArrived = new Promise<void>((resolve) => {
      arrived = resolve;
    });
  });

  it('a cycle that starts while the last one still talks to the provider leaves the target alone, and the one after signals it', async () => {
    const output = new CapturedOutput();
    try {
      const run = world.handler();
      const slow = run(scheduledEvent('2026-03-01T10:00:00Z'), contextWith());
      slow.catch(() => undefined);
      await etrnArrived;

      const overlapping = await run(scheduledEvent('2026-03-01T10:15:00Z'), contextWith());
      expect(overlapping.results.map((r) => [r.target, r.outcome, r.reason])).toEqual([
        ['isp', 'skipped', TARGET_BUSY],
      ]);
      expect(provider.connections).toHaveLength(1);

      answer();
      expect((await slow).results.map((r) => [r.target, r.outcome])).toEqual([
        ['isp', 'signalled'],
      ]);
      // The busy skip recorded nothing: the slow cycle's own result is the target's status.
      const status = await world.dynamodb.send(
        new GetItemCommand({
          TableName: TABLE,
          Key: { pk: { S: 'status#isp' } },
          ConsistentRead: true,
        }),
      );
      expect([status.Item?.lastOutcome?.S, status.Item?.lastCycle?.N]).toEqual(['signalled', '1']);

      // Given back when the session ended: the next cycle signals at once.
      const next = await run(scheduledEvent('2026-03-01T10:30:00Z'), contextWith());
      expect(next.results.map((r) => [r.target, r.outcome])).toEqual([['isp', 'signalled']]);
      expect(provider.connections).toHaveLength(2);
      expect(provider.lines.filter((l) => l === 'ETRN customer.test')).toHaveLength(2);
    } finally {
      output.restore();
    }
  });

  describe('DynamoDbTargetLeases', () => {
    const leases = (now: number) =>
      new DynamoDbTargetLeases(world.dynamodb, { tableName: TABLE, now: () => now });
    const T0 = Date.UTC(2026, 2, 1, 10);

    it('refuses a second holder until the first gives the target back', async () => {
      const first = await leases(T0).hold('a', T0 + 900_000);
      expect(first).toBeDefined();
      expect(await leases(T0 + 1000).hold('a', T0 + 901_000)).toBeUndefined();
      // Another target is not held by it.
      expect(await leases(T0 + 1000).hold('b', T0 + 901_000)).toBeDefined();
      await first!.release();
      expect(await leases(T0 + 2000).hold('a', T0 + 902_000)).toBeDefined();
    });

    it('lets a lease whose holder died run out at its deadline, and no later', async () => {
      expect(await leases(T0).hold('dead', T0 + 60_000)).toBeDefined();
      expect(await leases(T0 + 59_999).hold('dead', T0 + 120_000)).toBeUndefined();
      const taken = await leases(T0 + 60_000).hold('dead', T0 + 120_000);
      expect(taken).toBeDefined();
      // The dead holder's late release does not free the lease the new holder has.
      expect(await leases(T0 + 61_000).hold('dead', T0 + 180_000)).toBeUndefined();
    });

    it('ignores a lease no run could have written: one ending more than 16 minutes from now', async () => {
      const planted = await leases(T0).hold('planted', T0 + 365 * 86_400_000);
      expect(planted).toBeDefined();
      expect(await leases(T0 + 1000).hold('planted', T0 + 900_000)).toBeDefined();
    });
  });
});
