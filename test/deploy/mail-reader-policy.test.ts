/**
 * The MailReaderPolicy the stack outputs (lib/mail-reader-policy.ts; synthesised here on its own,
 * beside a bucket, to spare a bundling) is enough for `dequeue deliver --bucket`, and no more
 * than it needs: deliver runs against moto_server's S3 through the recording proxy, over every
 * path it has (delivered and deleted, refused for good and set aside under failed/ as a multipart
 * copy (its threshold lowered), deferred with a progress record, a stale claim taken over, a
 * crash orphan removed), and each S3 call it made is evaluated against
 * the policy's statements as synthesised (test/deploy/iam-policy.ts). Then each statement is
 * taken away in turn: some call must be refused, or the statement is more than deliver needs.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  ListObjectsV2Command,
  PutBucketVersioningCommand,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { App, Duration, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { S3MailStoreReader } from '../../cli/adapters/s3-mail-store-reader';
import { MailReaderPolicy } from '../../lib/mail-reader-policy';
import { MailStore } from '../../lib/mail-store';
import { createS3MailSink } from '../../lambda/adapters/s3-mail-sink';
import { ScriptedMailServer } from '../../peers/scripted-mail-server';
import { message, store } from '../cli/delivery/stored-mail';
import { runCli } from '../support/cli-run';
import { onlyResource } from '../lib/synth-dequeue';
import {
  describeWithMotoServer,
  MOTO_REGION,
  startMotoServer,
  type MotoServer,
} from '../servers/moto-server';
import { decodeCall, type AwsCall } from './aws-calls';
import { bucketKeys } from './bucket-keys';
import { CfnResolver } from './cfn-resolve';
import type { CfnTemplate } from './cloud-assembly';
import { decide, type Policy, type Statement } from './iam-policy';
import { startRecordingProxy, type RecordingProxy } from './recording-proxy';

const ACCOUNT_ID = '123456789012';
const READER_ARN = `arn:aws:iam::${ACCOUNT_ID}:user/mail-gateway`;

describeWithMotoServer('the MailReaderPolicy against what dequeue deliver does in S3', () => {
  let moto: MotoServer;
  let proxy: RecordingProxy;
  let direct: S3Client;
  let viaProxy: S3Client;
  let reader: Policy;
  let bucket: string;
  let calls: AwsCall[] = [];
  const cleanups: (() => Promise<void> | void)[] = [];

  beforeAll(async () => {
    // The template's content is what matters here; CDK's own validation is test/lib/cfn-validation.test.ts's.
    const stack = new Stack(new App({ builtinCloudFormationValidation: false }), 'Dequeue');
    // The stack's own store: versioned, SSE-KMS with a key of its own, the expiry tag.
    new MailReaderPolicy(stack, 'MailReader', {
      bucket: new MailStore(stack, 'MailStore', {
        mailPrefix: 'mail/',
        encryption: 'kms',
        expiration: Duration.days(30),
      }).bucket,
      mailPrefix: 'mail/',
    });
    const synthesised = Template.fromStack(stack);
    const template = synthesised.toJSON() as CfnTemplate;
    const resolver = new CfnResolver(template, {
      partition: 'aws',
      region: MOTO_REGION,
      accountId: ACCOUNT_ID,
      stackName: stack.stackName,
      urlSuffix: 'amazonaws.com',
    });
    bucket = resolver.physicalOf(onlyResource(synthesised, 'AWS::S3::Bucket').id).ref;
    const policy = onlyResource(synthesised, 'AWS::IAM::ManagedPolicy');
    const document = resolver.resolve(policy.resource.Properties.PolicyDocument) as {
      Statement: Statement[];
    };
    reader = { name: policy.id, kind: 'identity', statements: document.Statement };

    moto = await startMotoServer();
    cleanups.push(() => moto.stop());
    proxy = await startRecordingProxy({ host: '127.0.0.1', port: moto.port });
    cleanups.push(() => proxy.stop());
    direct = new S3Client({ ...moto.clientConfig, forcePathStyle: true });
    viaProxy = new S3Client({
      ...moto.clientConfig,
      endpoint: proxy.endpoint,
      forcePathStyle: true,
    });
    cleanups.push(
      () => direct.destroy(),
      () => viaProxy.destroy(),
    );
    await direct.send(new CreateBucketCommand({ Bucket: bucket }));
    await direct.send(
      new PutBucketVersioningCommand({
        Bucket: bucket,
        VersioningConfiguration: { Status: 'Enabled' },
      }),
    );

    // What the function stored after ATRN: four messages, one of them claimed by a run that died,
    // one large enough to be set aside in parts; and a fifth whose envelope a crash left unwritten.
    const messages = [
      message(1, { to: ['ok@customer.test'] }),
      message(2, { to: ['ok@customer.test', 'nobody@customer.test'], bodyBytes: 11 * 1024 * 1024 }),
      message(3, { to: ['ok@customer.test', 'later@customer.test'] }),
      message(4, { to: ['ok@customer.test'] }),
      message(5, { to: ['ok@customer.test'] }),
    ];
    await store(createS3MailSink({ client: direct, bucket }), 'odmr', messages);
    const keys = (
      (await direct.send(new ListObjectsV2Command({ Bucket: bucket }))).Contents ?? []
    ).map((o) => o.Key!);
    const staleClaim = `${keys.find((k) => k.includes(messages[3]!.id) && k.endsWith('.eml'))!.slice(0, -4)}.claim`;
    await direct.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: staleClaim,
        Body: JSON.stringify({
          host: 'gone',
          pid: 1,
          nonce: 'n',
          expiresAt: '2020-01-01T00:00:00Z',
          leaseMs: 1,
        }),
      }),
    );
    // A lease is judged by S3's clock, which dates to the second: the claim's has run out once
    // that clock has moved on.
    await sleep(1100);
    const orphanEnvelope = keys.find((k) => k.includes(messages[4]!.id) && k.endsWith('.json'))!;
    await direct.send(new DeleteObjectCommand({ Bucket: bucket, Key: orphanEnvelope }));

    const mx = await new ScriptedMailServer({
      rcpt: (a) =>
        a.startsWith('nobody')
          ? '550 5.1.1 no such user'
          : a.startsWith('later')
            ? '451 4.2.0 try later'
            : '250 Ok',
    }).start();
    cleanups.push(() => mx.stop());
    proxy.clear();
    const run = await runCli(
      ['deliver', '--bucket', bucket, '--to', `smtp://127.0.0.1:${mx.port}`, '--json'],
      {
        openMailStore: (_, notice) =>
          new S3MailStoreReader(viaProxy, bucket, 'mail/', {
            notice,
            orphanGraceMs: 0,
            multipartCopyAboveBytes: 6 * 1024 * 1024,
            copyPartBytes: 5 * 1024 * 1024,
          }),
      },
    );
    // The paths this test is about: each outcome once, the orphan removed (no message).
    expect(run.json.map((r) => r.outcome).sort()).toEqual([
      'deferred',
      'delivered',
      'delivered',
      'failed',
    ]);
    expect(run.stderr).toMatch(/removed s3:\/\/\S+\.eml: a message without its envelope/);
    const bucketKeyOf = bucketKeys(template, resolver);
    calls = proxy.exchanges.map((x) =>
      decodeCall(x, { partition: 'aws', accountId: ACCOUNT_ID, bucketKeyOf }),
    );
  }, 240_000);
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  const decisions = (policies: readonly Policy[]) =>
    calls.flatMap((call) =>
      call.authorizations.map((auth) => ({
        call,
        auth,
        decision: decide(auth, policies, READER_ARN, ACCOUNT_ID),
      })),
    );

  it('allows every S3 call deliver made', () => {
    const all = decisions([reader]);
    const operations = new Set(calls.map((c) => c.operation));
    for (const op of [
      's3 ListObjectsV2',
      's3 HeadObject',
      's3 GetObject',
      's3 PutObject',
      's3 CopyObject',
      's3 DeleteObject',
      's3 CreateMultipartUpload',
      's3 UploadPartCopy',
      's3 CompleteMultipartUpload',
    ])
      expect(operations, op).toContain(op);
    const table = all.map(
      ({ call, auth, decision }) =>
        `${call.operation} ${call.subject} -> ${auth.action} ${decision.verdict}${'by' in decision ? ` (${decision.by.statement})` : ''}`,
    );
    console.info(
      `deliver's S3 calls against the MailReaderPolicy:\n${[...new Set(table)].join('\n')}`,
    );
    expect(
      all
        .filter((d) => d.decision.verdict !== 'allowed')
        .map(
          (d) =>
            `${d.call.operation} ${d.call.subject}: ${d.auth.action} on ${d.auth.resource} ${d.decision.verdict}`,
        ),
    ).toEqual([]);
  });

  it('has no statement deliver could do without', () => {
    for (const [index, statement] of reader.statements.entries()) {
      const without: Policy = {
        ...reader,
        statements: reader.statements.filter((_, i) => i !== index),
      };
      const refused = decisions([without]).filter((d) => d.decision.verdict !== 'allowed');
      expect(refused.length, `${statement.Sid}: no call needed it`).toBeGreaterThan(0);
    }
  });
});
