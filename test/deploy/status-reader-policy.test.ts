/**
 * The StatusReaderPolicy the stack outputs (lib/status-reader-policy.ts, synthesised here beside
 * a table of the stack's shape, to spare a bundling) is enough for `dequeue status --table`, and
 * no more: the command runs against moto_server's DynamoDB through the recording proxy, for every
 * target and for some, and each call it made is evaluated against the policy as synthesised
 * (test/deploy/iam-policy.ts). Every status is one Query of the status index: a Scan of the table
 * (claims and slots included, millions of items at 10,000 targets) is neither made nor allowed.
 */
import { CreateTableCommand, DynamoDBClient, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { main } from '../../cli/main';
import { DynamoDbStatusStore } from '../../lambda/adapters/dynamodb-status';
import { counterTableDefinition, STATUS_INDEX } from '../../lambda/counter-table';
import { StatusReaderPolicy } from '../../lib/status-reader-policy';
import { onlyResource } from '../lib/synth-dequeue';
import {
  describeWithMotoServer,
  MOTO_REGION,
  startMotoServer,
  type MotoServer,
} from '../servers/moto-server';
import { decodeCall, type AwsCall } from './aws-calls';
import { CfnResolver } from './cfn-resolve';
import type { CfnTemplate } from './cloud-assembly';
import { decide, type Policy, type Statement } from './iam-policy';
import { startRecordingProxy, type RecordingProxy } from './recording-proxy';

const ACCOUNT_ID = '123456789012';
const OPERATOR_ARN = `arn:aws:iam::${ACCOUNT_ID}:user/operator`;

describeWithMotoServer('the StatusReaderPolicy against what dequeue status --table does', () => {
  let moto: MotoServer;
  let proxy: RecordingProxy;
  let reader: Policy;
  let table: string;
  const runs: { argv: string[]; status: number; stdout: string; calls: AwsCall[] }[] = [];

  beforeAll(async () => {
    const stack = new Stack(new App({ builtinCloudFormationValidation: false }), 'Dequeue');
    new StatusReaderPolicy(stack, 'StatusReader', {
      table: new dynamodb.Table(stack, 'CycleCounter', {
        partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
      }),
      statusIndex: STATUS_INDEX.indexName,
    });
    const synthesised = Template.fromStack(stack);
    const resolver = new CfnResolver(synthesised.toJSON() as CfnTemplate, {
      partition: 'aws',
      region: MOTO_REGION,
      accountId: ACCOUNT_ID,
      stackName: stack.stackName,
      urlSuffix: 'amazonaws.com',
    });
    table = resolver.physicalOf(onlyResource(synthesised, 'AWS::DynamoDB::Table').id).ref;
    const policy = onlyResource(synthesised, 'AWS::IAM::ManagedPolicy');
    const document = resolver.resolve(policy.resource.Properties.PolicyDocument) as {
      Statement: Statement[];
    };
    reader = { name: policy.id, kind: 'identity', statements: document.Statement };

    moto = await startMotoServer();
    proxy = await startRecordingProxy({ host: '127.0.0.1', port: moto.port });
    const db = new DynamoDBClient(moto.clientConfig);
    try {
      await db.send(new CreateTableCommand(counterTableDefinition(table)));
      const store = new DynamoDbStatusStore(db, { tableName: table });
      const at = Date.parse('2026-03-01T10:00:00Z');
      for (const [target, outcome] of [
        ['isp-etrn', 'signalled'],
        ['odmr', 'temporary-failure'],
        ['finger', 'no-mail'],
      ] as const) {
        await store.record(
          {
            target,
            outcome,
            cycle: 7,
            durationMs: 5,
            replies: [],
            messages: 0,
            error: outcome === 'temporary-failure' ? 'connection refused' : null,
          },
          at,
        );
      }
      // What else lives in the table: the counter, a slot, claims. A status read never sees them.
      for (const pk of ['counter', 'slot#arn:x#2026-03-01T10:00:00Z', 'claim#7#isp-etrn'])
        await db.send(new PutItemCommand({ TableName: table, Item: { pk: { S: pk } } }));
    } finally {
      db.destroy();
    }

    for (const argv of [
      ['status', '--table', table, '--json'],
      ['status', '--table', table, '--target', 'odmr', '--json'],
    ]) {
      proxy.clear();
      let stdout = '';
      const status = await main(argv, {
        stdout: { write: (t: string) => (stdout += t) },
        stderr: { write: () => true },
        aws: { ...moto.clientConfig, endpoint: proxy.endpoint },
      });
      const calls = proxy.exchanges.map((x) =>
        decodeCall(x, { partition: 'aws', accountId: ACCOUNT_ID, hashKeyOf: () => 'pk' }),
      );
      runs.push({ argv, status, stdout, calls });
    }
  }, 60_000);
  afterAll(async () => {
    await proxy?.stop();
    await moto?.stop();
  });

  it('lists every target from one Query of the status index, the claims and the counter left unread', () => {
    const all = runs[0]!;
    expect(all.status).toBe(1); // odmr is failing
    expect(
      all.stdout
        .trimEnd()
        .split('\n')
        .map((l) => JSON.parse(l).target),
    ).toEqual(['finger', 'isp-etrn', 'odmr']);
    expect(all.calls.map((c) => c.operation)).toEqual(['dynamodb Query']);
    expect(all.calls[0]!.authorizations.map((a) => a.resource)).toEqual([
      `arn:aws:dynamodb:${MOTO_REGION}:${ACCOUNT_ID}:table/${table}/index/status`,
    ]);
    expect(runs[1]!.calls.map((c) => c.operation)).toEqual(['dynamodb GetItem']);
    expect(JSON.parse(runs[1]!.stdout)).toMatchObject({
      target: 'odmr',
      lastError: 'connection refused',
    });
  });

  it('makes only calls the policy allows, and needs each of its statements', () => {
    const decisions = runs.flatMap((run) =>
      run.calls.flatMap((call) =>
        call.authorizations.map((auth) => ({
          call: `${run.argv.join(' ')}: ${call.operation} -> ${auth.action} on ${auth.resource}`,
          decision: decide(auth, [reader], OPERATOR_ARN, ACCOUNT_ID),
        })),
      ),
    );
    expect(decisions.length).toBeGreaterThan(0);
    expect(decisions.filter((d) => d.decision.verdict !== 'allowed').map((d) => d.call)).toEqual(
      [],
    );
    const used = new Set(
      decisions.flatMap((d) => (d.decision.verdict === 'allowed' ? [d.decision.by.statement] : [])),
    );
    expect(reader.statements.map((s) => s.Sid).filter((sid) => !used.has(sid!))).toEqual([]);
    // No Scan in the policy at all.
    expect(JSON.stringify(reader.statements)).not.toContain('dynamodb:Scan');
  });
});
