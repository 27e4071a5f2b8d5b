/**
 * The Lambda path end to end: the handler wired from its environment as in AWS (SSM
 * configuration, Secrets Manager credentials, DynamoDB counter, S3 for the mail: moto_server),
 * an ATRN target, and the in-process provider delivering its queue into the bucket.
 */
import {
  CreateBucketCommand,
  GetObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  S3Client,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { depsFromEnvironment } from '../../lambda/deployed-adapters';
import { createHandler } from '../../lambda/handler';
import { ACCOUNT, AtrnProvider, type AtrnProviderOptions } from '../../peers/atrn-provider';
import { describeWithMotoServer, startMotoServer, type MotoServer } from '../servers/moto-server';
import { AwsWorld, CapturedOutput, contextWith, ENV } from '../lambda/aws-world';
import { heldMessage } from '../core/odmr/odmr-fixtures';

const BUCKET = 'dequeue-mail';

describeWithMotoServer('ODMR in the Lambda: ATRN mail into S3', () => {
  let moto: MotoServer;
  let world: AwsWorld;
  let s3: S3Client;

  beforeAll(async () => {
    moto = await startMotoServer();
    world = new AwsWorld(moto);
    s3 = new S3Client({ ...moto.clientConfig, forcePathStyle: true });
  });
  afterAll(async () => {
    s3?.destroy();
    await moto?.stop();
  });
  beforeEach(async () => {
    await world.reset();
    await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
    await world.putSecret('dequeue/odmr', ACCOUNT);
  });

  async function invoke(
    providerOptions: AtrnProviderOptions,
    remainingMs = 60_000,
    target: Record<string, unknown> = {},
  ) {
    const provider = await new AtrnProvider(providerOptions).start();
    await world.putSettings({
      helloName: 'mx.customer.test',
      mail: { maxMessageBytes: 10 * 1024 * 1024 },
    });
    await world.putTarget('odmr', {
      name: 'odmr',
      host: '127.0.0.1',
      port: provider.port,
      tls: 'none',
      auth: { secretId: 'dequeue/odmr' },
      command: 'ATRN',
      mail: { domains: ['customer.test'] },
      ...target,
    });
    const handler = createHandler(
      depsFromEnvironment({ ...ENV, DEQUEUE_MAIL_BUCKET: BUCKET }, moto.clientConfig),
    );
    const output = new CapturedOutput();
    try {
      const result = await handler({}, contextWith(remainingMs));
      await provider.idle();
      return { result, provider };
    } finally {
      output.restore();
      await provider.stop();
    }
  }

  const objects = async () =>
    ((await s3.send(new ListObjectsV2Command({ Bucket: BUCKET }))).Contents ?? [])
      .map((o) => o.Key!)
      .sort();
  const get = async (Key: string) =>
    Buffer.from(
      await (
        await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key }))
      ).Body!.transformToByteArray(),
    );

  it('stores every message under mail/<target>/<date>/ with its envelope, as received (bare LF and CR kept); the result counts them', async () => {
    const queue = [heldMessage(0), heldMessage(1, 6 * 1024 * 1024), heldMessage(2)];
    const { result, provider } = await invoke({ queue });
    expect(result.results).toMatchObject([
      { target: 'odmr', outcome: 'signalled', messages: 3, error: null },
    ]);
    expect(provider.waiting).toEqual([]);
    const keys = await objects();
    expect(keys).toHaveLength(6);
    expect(
      keys.every((k) =>
        /^mail\/odmr\/\d{4}\/\d{2}\/\d{2}\/\d{8}T\d{9}Z-[0-9a-f]{12}\.(eml|json)$/.test(k),
      ),
    ).toBe(true);
    for (const key of keys.filter((k) => k.endsWith('.json'))) {
      const envelope = JSON.parse((await get(key)).toString('utf8'));
      const n = queue.findIndex((m) => m.from === envelope.mailFrom);
      expect(envelope).toMatchObject({
        target: 'odmr',
        rcptTo: queue[n]!.to,
        message: key.replace(/json$/, 'eml'),
      });
      // As received: after our trace header, the provider's text byte for byte (its bare LF, its
      // bare CR and its "\n.\r\n" kept), and `bytes` is the object's size.
      const stored = await get(envelope.message);
      expect(stored.subarray(envelope.traceBytes).equals(queue[n]!.text)).toBe(true);
      expect(envelope.bytes).toBe(stored.length);
    }
  });

  it("the invocation's deadline arriving mid-queue: acknowledged messages in S3, the rest with the provider, no stray parts", async () => {
    const queue = Array.from({ length: 8 }, (_, i) => heldMessage(i));
    // 5 s of safety margin: the cycle's deadline is about 2.5 s away.
    const { result, provider } = await invoke({ queue, pauseBeforeMessageMs: 400 }, 7_500, {
      timeoutSeconds: 2,
    });
    const [r] = result.results;
    expect(r).toMatchObject({ target: 'odmr', outcome: 'temporary-failure' });
    expect(r!.error).toMatch(/deadline/);
    expect(r!.messages).toBeGreaterThan(0);
    expect(r!.messages).toBeLessThan(8);
    expect(provider.acknowledged).toHaveLength(r!.messages);
    expect(provider.waiting).toHaveLength(8 - r!.messages);
    expect((await objects()).filter((k) => k.endsWith('.eml'))).toHaveLength(r!.messages);
    expect(
      (await s3.send(new ListMultipartUploadsCommand({ Bucket: BUCKET }))).Uploads ?? [],
    ).toEqual([]);
  });

  it('without DEQUEUE_MAIL_BUCKET an ATRN target is a config-error and nothing is sent', async () => {
    const provider = await new AtrnProvider({ queue: [heldMessage(0)] }).start();
    try {
      await world.putTarget('odmr', {
        name: 'odmr',
        host: '127.0.0.1',
        port: provider.port,
        tls: 'none',
        auth: { secretId: 'dequeue/odmr' },
        command: 'ATRN',
        mail: { domains: ['customer.test'] },
      });
      const output = new CapturedOutput();
      const result = await createHandler(depsFromEnvironment(ENV, moto.clientConfig))(
        {},
        contextWith(),
      ).finally(() => output.restore());
      expect(result.results).toMatchObject([{ target: 'odmr', outcome: 'config-error' }]);
      expect(provider.serverLines).toEqual([]);
    } finally {
      await provider.stop();
    }
  });
});
