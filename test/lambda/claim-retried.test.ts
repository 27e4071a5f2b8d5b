/**
 * A claim whose answer is lost: DynamoDB wrote it, the connection was cut before the answer came
 * back, and the SDK sent the same conditional write again, which then met our own item. The run
 * must know the claim for its own (its nonce): the target is signalled once and reported
 * signalled, not skipped as "already signalled" by nobody. The same for the slot's count.
 *
 * A proxy in front of moto_server (test/support/answer-dropping-proxy.ts) lets moto do the write
 * and cuts the connection before its answer reaches the SDK.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { afterAll, afterEach, beforeAll, beforeEach, expect, it } from 'vitest';
import { DynamoDbCycleCounter } from '../../lambda/adapters/dynamodb-counter';
import type { CycleResult } from '../../lambda/core/result';
import { ScriptedProvider } from '../../peers/scripted-provider';
import { describeWithMotoServer, startMotoServer, type MotoServer } from '../servers/moto-server';
import {
  startAnswerDroppingProxy,
  type AnswerDroppingProxy,
  type ProxiedRequest,
} from '../support/answer-dropping-proxy';
import { AwsWorld, CapturedOutput, contextWith, scheduledEvent, TABLE } from './aws-world';

const operation = (r: ProxiedRequest) => String(r.headers['x-amz-target'] ?? '');
const isClaim = (r: ProxiedRequest) =>
  operation(r).endsWith('.PutItem') && r.body.includes('"claim#');
const isSlotCount = (r: ProxiedRequest) => operation(r).endsWith('.TransactWriteItems');

describeWithMotoServer('a claim whose answer was lost and that the SDK sent again', () => {
  let moto: MotoServer;
  let world: AwsWorld;
  let provider: ScriptedProvider;
  let proxy: AnswerDroppingProxy | undefined;
  let output: CapturedOutput;

  beforeAll(async () => {
    moto = await startMotoServer();
    world = new AwsWorld(moto);
    provider = await new ScriptedProvider({ extensions: ['ETRN'] }).start();
  });
  afterAll(async () => {
    await provider?.stop();
    await moto?.stop();
  });
  beforeEach(async () => {
    await world.reset();
    provider.connections.length = 0;
    await world.putTarget('isp', {
      host: '127.0.0.1',
      port: provider.port,
      tls: 'none',
      command: 'ETRN customer.test',
    });
    output = new CapturedOutput();
  });
  afterEach(async () => {
    output.restore();
    await proxy?.stop();
    proxy = undefined;
  });

  /** One scheduled cycle whose counter talks to moto through a proxy that loses `drop`'s answer. */
  async function cycleLosing(
    drop: (r: ProxiedRequest) => boolean,
    { claims = true, event = scheduledEvent('2026-03-01T10:00:00Z') } = {},
  ): Promise<CycleResult> {
    proxy = await startAnswerDroppingProxy(moto.port, (r, dropped) => dropped === 0 && drop(r));
    const client = new DynamoDBClient({ ...moto.clientConfig, endpoint: proxy.endpoint });
    try {
      const dynamo = new DynamoDbCycleCounter(client, { tableName: TABLE });
      // Without claims, the slot's count alone decides whether this run signals.
      const counter = claims
        ? dynamo
        : { peek: dynamo.peek.bind(dynamo), count: dynamo.count.bind(dynamo) };
      const run = world.handler({ counter });
      return await run(event, contextWith());
    } finally {
      client.destroy();
    }
  }

  it('the claim: the target is signalled once and reported signalled', async () => {
    const result = await cycleLosing(isClaim);

    expect(proxy!.dropped.map(operation)).toEqual(['DynamoDB_20120810.PutItem']);
    // The SDK sent the claim twice; moto took the first and refused the second.
    expect(proxy!.requests.filter(isClaim)).toHaveLength(2);
    expect(result.results.map((r) => [r.target, r.outcome, r.reason ?? null])).toEqual([
      ['isp', 'signalled', null],
    ]);
    expect(provider.connections).toHaveLength(1);
    expect(provider.lines.filter((l) => l === 'ETRN customer.test')).toHaveLength(1);
  });

  it("the slot's count: the cycle is this run's, counted once, the target signalled", async () => {
    const result = await cycleLosing(isSlotCount, { claims: false });

    expect(proxy!.dropped.map(operation)).toEqual(['DynamoDB_20120810.TransactWriteItems']);
    expect(proxy!.requests.filter(isSlotCount)).toHaveLength(2);
    expect(result.cycle).toBe(1);
    expect(await world.counter()).toBe(1);
    expect(result.results.map((r) => [r.target, r.outcome, r.reason ?? null])).toEqual([
      ['isp', 'signalled', null],
    ]);
    expect(provider.connections).toHaveLength(1);
  });

  it('an unscheduled run ({}): counted once, not twice, so no cycle number is skipped', async () => {
    const result = await cycleLosing(isSlotCount, { claims: false, event: {} });

    expect(proxy!.dropped.map(operation)).toEqual(['DynamoDB_20120810.TransactWriteItems']);
    expect(proxy!.requests.filter(isSlotCount)).toHaveLength(2);
    expect(result.cycle).toBe(1);
    expect(await world.counter()).toBe(1);
    expect(provider.connections).toHaveLength(1);
  });
});
