/**
 * Forged work orders, tried the way an attacker would (docs/security.md, "Invocation events" and
 * "The work queue"): someone allowed to invoke the function sends it an SQS-shaped event, and
 * someone allowed to send to the work queue puts a message of their own on it (moto SQS). Each
 * order points a configured target's name, or a name of its own, at the attacker's host, with a
 * secret of the function's and a relay of the attacker's.
 *
 * What must hold: the attacker's host gets no connection (no AUTH, no mail); no secret is read
 * for anything the configuration does not say; a configured target named in an order is signalled
 * as configured and nowhere else; an order this deployment did not write is handed back (so it
 * ends in the dead-letter queue and its alarm fires).
 */
import {
  CreateQueueCommand,
  GetQueueAttributesCommand,
  SendMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import type { SQSBatchResponse } from 'aws-lambda';
import { afterAll, afterEach, beforeAll, beforeEach, expect, it } from 'vitest';
import type { Credentials } from '../../lambda/core/ports';
import { createEntry } from '../../lambda/handler';
import { ACCOUNT, AtrnProvider } from '../../peers/atrn-provider';
import { ScriptedProvider } from '../../peers/scripted-provider';
import { heldMessage } from '../core/odmr/odmr-fixtures';
import { receiveBatch, sqsEvent } from '../deploy/queue-poller';
import { describeWithMotoServer, startMotoServer, type MotoServer } from '../servers/moto-server';
import { AwsWorld, CapturedOutput, contextWith, scheduledEvent } from './aws-world';

describeWithMotoServer(
  'forged work orders reach neither a secret nor a host outside the configuration',
  () => {
    let moto: MotoServer;
    let world: AwsWorld;
    let sqs: SQSClient;
    /** The configured ETRN provider (no AUTH configured for it). */
    let provider: ScriptedProvider;
    /** The configured ODMR provider, holding the customer's mail. */
    let odmr: AtrnProvider;
    /** The attacker's host: provider and relay in one. */
    let attacker: ScriptedProvider;
    let output: CapturedOutput;
    const secretsRead: string[] = [];

    beforeAll(async () => {
      moto = await startMotoServer();
      world = new AwsWorld(moto);
      sqs = new SQSClient(moto.clientConfig);
      provider = await new ScriptedProvider({ extensions: ['ETRN'] }).start();
      odmr = await new AtrnProvider({ queue: [heldMessage(0)] }).start();
      attacker = await new ScriptedProvider({
        extensions: ['ETRN', 'AUTH PLAIN LOGIN', 'ATRN'],
        account: { username: ACCOUNT.username, password: ACCOUNT.password },
      }).start();
    });
    afterAll(async () => {
      sqs?.destroy();
      await provider?.stop();
      await odmr?.stop();
      await attacker?.stop();
      await moto?.stop();
    });
    beforeEach(async () => {
      await world.reset();
      secretsRead.length = 0;
      provider.connections.length = 0;
      attacker.connections.length = 0;
      await world.putSettings({ helloName: 'mx.customer.test' });
      await world.putTarget('isp', {
        host: '127.0.0.1',
        port: provider.port,
        tls: 'none',
        command: 'ETRN customer.test',
      });
      await world.putTarget('odmr', {
        host: '127.0.0.1',
        port: odmr.port,
        tls: 'none',
        auth: { secretId: 'dequeue/odmr' },
        command: 'ATRN',
        mail: { domains: ['customer.test'] },
      });
      await world.putSecret('dequeue/odmr', ACCOUNT);
      output = new CapturedOutput();
    });
    afterEach(() => output.restore());

    /** The function as deployed (no mail bucket), its secret reads recorded. */
    function entry() {
      const deps = world.deps();
      const credentials: Credentials = {
        get: (id, signal) => {
          secretsRead.push(id);
          return deps.credentials.get(id, signal);
        },
      };
      return createEntry({ ...deps, credentials });
    }

    /** What a forger writes: version 1 orders carried the whole target and settings. */
    const forgedV1 = (name: string, cycle: number, over: Record<string, unknown> = {}) =>
      JSON.stringify({
        v: 1,
        cycle,
        claim: false,
        queuedAt: new Date().toISOString(),
        expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
        settings: {
          mail: { relay: { host: '127.0.0.1', port: attacker.port, tls: 'none' } },
        },
        target: {
          name,
          host: '127.0.0.1',
          port: attacker.port,
          tls: 'none',
          allowPlaintextAuth: true,
          auth: { secretId: 'dequeue/odmr', mechanism: 'PLAIN' },
          command: 'ETRN customer.test',
          ...over,
        },
      });
    const forgedV2 = (name: string, cycle: number, parameter?: string) =>
      JSON.stringify({
        v: 2,
        cycle,
        claim: true,
        queuedAt: new Date().toISOString(),
        expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
        target: name,
        ...(parameter ? { parameter } : {}),
      });

    const attackerSaw = () => attacker.connections.length;
    const handedBack = (response: unknown) =>
      (response as SQSBatchResponse).batchItemFailures.map((f) => f.itemIdentifier).sort();

    it('by direct invocation: an SQS-shaped event with orders of its own', async () => {
      const run = entry();
      // One real cycle first: cycle 1 is counted, both targets were signalled once.
      await run(scheduledEvent('2026-03-01T10:00:00Z'), contextWith());
      const before = provider.connections.length;
      secretsRead.length = 0;

      const event = {
        Records: [
          // A configured name, pointed at the attacker with the ODMR secret.
          { messageId: 'm1', eventSource: 'aws:sqs', body: forgedV1('isp', 1) },
          // The ODMR target itself, with the attacker's relay for its mail.
          {
            messageId: 'm2',
            eventSource: 'aws:sqs',
            body: forgedV1('odmr', 1, {
              command: 'ATRN',
              mail: { domains: ['customer.test'] },
              port: odmr.port,
            }),
          },
          // A name the configuration does not hold.
          { messageId: 'm3', eventSource: 'aws:sqs', body: forgedV1('ghost', 1) },
          // A configured name read from a parameter outside the configuration.
          {
            messageId: 'm4',
            eventSource: 'aws:sqs',
            body: forgedV2('isp', 1, '/attacker/targets/isp'),
          },
          // A claim for a cycle not yet counted (it would make that cycle skip the target).
          { messageId: 'm5', eventSource: 'aws:sqs', body: forgedV2('isp', 50) },
        ],
      };
      const response = await run(event, contextWith());

      expect(attackerSaw()).toBe(0);
      // The one secret read is the configured ODMR target's own, for its configured provider.
      expect(secretsRead.every((id) => id === 'dequeue/odmr')).toBe(true);
      expect(attacker.lines.some((l) => /^AUTH/i.test(l))).toBe(false);
      // `isp` was signalled as configured (forced: claim false), at its own provider.
      expect(provider.connections.length).toBe(before + 1);
      expect(provider.lines.filter((l) => l === 'ETRN customer.test')).toHaveLength(before + 1);
      // What no cycle of this deployment wrote is handed back, to end in the dead-letter queue.
      expect(handedBack(response)).toEqual(['m3', 'm4', 'm5']);
      const refused = output.records.filter((r) => r.message === 'work order refused');
      expect(refused.map((r) => r.messageId).sort()).toEqual(['m3', 'm4', 'm5']);
      expect(refused.find((r) => r.messageId === 'm5')!.error).toMatch(
        /cycle 50 has not been counted/,
      );
      // The mail the ODMR provider held after the first cycle never went to the attacker's relay.
      expect(attacker.lines.some((l) => /^MAIL FROM/i.test(l))).toBe(false);
    });

    it('a foreign message on the work queue (moto SQS)', async () => {
      const run = entry();
      await run(scheduledEvent('2026-03-01T10:00:00Z'), contextWith());
      const before = provider.connections.length;
      secretsRead.length = 0;

      const queueUrl = (await sqs.send(new CreateQueueCommand({ QueueName: 'dequeue-work' })))
        .QueueUrl!;
      const queueArn = (
        await sqs.send(
          new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['QueueArn'] }),
        )
      ).Attributes!.QueueArn!;
      for (const body of [forgedV1('isp', 1), forgedV1('ghost', 1)])
        await sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: body }));
      const messages = await receiveBatch(moto.clientConfig, queueUrl, 10);
      expect(messages).toHaveLength(2);
      const response = await run(sqsEvent(messages, queueArn, 'us-east-1'), contextWith());

      expect(attackerSaw()).toBe(0);
      expect(secretsRead).toEqual([]);
      expect(provider.connections.length).toBe(before + 1);
      const ghost = messages.find((m) => m.Body!.includes('"ghost"'))!.MessageId!;
      expect(handedBack(response)).toEqual([ghost]);
    });
  },
);
