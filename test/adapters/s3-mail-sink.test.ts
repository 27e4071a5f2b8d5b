/**
 * The S3 sink against moto_server's real S3 API: what a reader of the bucket sees, whole
 * messages or nothing, for single PUTs and multipart uploads, and after aborts at every stage.
 */
import {
  CreateBucketCommand,
  GetObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  S3Client,
} from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { createS3MailSink, mailObjectKey } from '../../lambda/adapters/s3-mail-sink';
import { MemoryBudget } from '../../lambda/core/memory-budget';
import type { MailEnvelope } from '../../lambda/core/ports';
import { createMailReceiver } from '../../lambda/core/odmr/reversed-session';
import { releaseSignal } from '../../lambda/core/signal/session';
import { AtrnProvider } from '../../peers/atrn-provider';
import { describeWithMotoServer, startMotoServer, type MotoServer } from '../servers/moto-server';
import { atrnTarget, credentials, heldMessage } from '../core/odmr/odmr-fixtures';

const MiB = 1024 * 1024;

describeWithMotoServer('S3 mail sink against moto_server', () => {
  let moto: MotoServer;
  let s3: S3Client;
  let bucket: string;
  let n = 0;

  beforeAll(async () => {
    moto = await startMotoServer();
    s3 = new S3Client({ ...moto.clientConfig, forcePathStyle: true });
  });
  afterAll(async () => {
    s3?.destroy();
    await moto?.stop();
  });
  beforeEach(async () => {
    bucket = `mail-${++n}`;
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  });

  const envelope = (id: string): MailEnvelope => ({
    id,
    mailFrom: 'a@origin.test',
    rcptTo: ['b@customer.test'],
    receivedAt: '2024-05-06T07:08:09.000Z',
    provider: 'provider.test:366',
    target: 'isp',
    heloName: 'provider.test',
    tls: true,
    traceBytes: 0,
  });
  const keys = async () =>
    ((await s3.send(new ListObjectsV2Command({ Bucket: bucket }))).Contents ?? [])
      .map((o) => o.Key!)
      .sort();
  const uploadsInProgress = async () =>
    (await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket }))).Uploads ?? [];
  const get = async (Key: string) =>
    Buffer.from(
      await (
        await s3.send(new GetObjectCommand({ Bucket: bucket, Key }))
      ).Body!.transformToByteArray(),
    );

  async function store(id: string, data: Buffer, piece = 64 * 1024) {
    const sink = createS3MailSink({ client: s3, bucket, partSize: 5 * MiB, queueSize: 2 });
    const draft = await sink.begin(envelope(id));
    for (let i = 0; i < data.length; i += piece) await draft.write([data.subarray(i, i + piece)]);
    return { draft, stored: await draft.commit() };
  }

  it('stores a small message (one PUT) and its envelope under <prefix><target>/<yyyy>/<mm>/<dd>/<id>', async () => {
    const data = randomBytes(100_000);
    const { stored } = await store('m1', data);
    expect(stored).toEqual({
      id: 'm1',
      location: `s3://${bucket}/mail/isp/2024/05/06/m1.eml`,
      bytes: 100_000,
    });
    expect(await keys()).toEqual(['mail/isp/2024/05/06/m1.eml', 'mail/isp/2024/05/06/m1.json']);
    expect((await get('mail/isp/2024/05/06/m1.eml')).equals(data)).toBe(true);
    const record = JSON.parse((await get('mail/isp/2024/05/06/m1.json')).toString('utf8'));
    expect(record).toMatchObject({
      version: 1,
      id: 'm1',
      mailFrom: 'a@origin.test',
      rcptTo: ['b@customer.test'],
      bytes: 100_000,
      message: 'mail/isp/2024/05/06/m1.eml',
    });
  });

  it('streams a large message as a multipart upload, byte-exact', async () => {
    const data = randomBytes(12 * MiB + 123);
    const { stored } = await store('big', data);
    expect(stored.bytes).toBe(data.length);
    expect((await get(`${mailObjectKey('mail/', envelope('big'))}.eml`)).equals(data)).toBe(true);
    expect(await uploadsInProgress()).toEqual([]);
  });

  it('an abort in the middle of a multipart upload leaves nothing: no object, no envelope, no parts', async () => {
    const sink = createS3MailSink({ client: s3, bucket, partSize: 5 * MiB, queueSize: 2 });
    const draft = await sink.begin(envelope('cut'));
    const data = randomBytes(11 * MiB);
    for (let i = 0; i < data.length; i += MiB) await draft.write([data.subarray(i, i + MiB)]);
    for (let wait = 0; wait < 50 && (await uploadsInProgress()).length === 0; wait++)
      await new Promise((r) => setTimeout(r, 100));
    expect(await uploadsInProgress(), 'the multipart upload had begun').toHaveLength(1);
    await draft.abort();
    expect(await keys()).toEqual([]);
    expect(await uploadsInProgress()).toEqual([]);
  });

  it('an abort after the commit withdraws the message and its envelope (it was never acknowledged)', async () => {
    const { draft } = await store('late', randomBytes(1000));
    expect(await keys()).toHaveLength(2);
    await draft.abort();
    expect(await keys()).toEqual([]);
  });

  it('a message that cannot be withdrawn (DeleteObject refused) is reported with its keys, after retries, not dropped silently', async () => {
    const refusing = new S3Client({ ...moto.clientConfig, forcePathStyle: true });
    let deletes = 0;
    refusing.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName === 'DeleteObjectCommand') {
          deletes++;
          throw Object.assign(new Error('Access Denied'), { name: 'AccessDenied' });
        }
        return next(args);
      },
      { step: 'initialize', name: 'refuseDeletes' },
    );
    try {
      const sink = createS3MailSink({ client: refusing, bucket, partSize: 5 * MiB, queueSize: 2 });
      const draft = await sink.begin(envelope('stuck'));
      await draft.write([Buffer.from('Subject: x\r\n\r\nbody\r\n')]);
      await draft.commit();
      const key = mailObjectKey('mail/', envelope('stuck'));
      await expect(draft.abort()).rejects.toMatchObject({
        kind: 'temporary',
        message: expect.stringMatching(
          new RegExp(
            `could not be withdrawn: s3://${bucket}/${key}\\.eml \\(AccessDenied.*s3://${bucket}/${key}\\.json`,
          ),
        ),
      });
      expect(deletes).toBe(6);
    } finally {
      refusing.destroy();
    }
  });

  it("under a run's memory budget a second message waits for the first one's upload buffers, then goes through (nothing refused)", async () => {
    const memory = new MemoryBudget(11 * MiB);
    const sink = createS3MailSink({ client: s3, bucket, partSize: 5 * MiB, queueSize: 2, memory });
    const first = await sink.begin(envelope('first'));
    expect(memory.usedBytes).toBe(11 * MiB);
    let secondBegun = false;
    const second = sink.begin(envelope('second')).then((d) => ((secondBegun = true), d));
    await first.write([randomBytes(6 * MiB)]);
    expect(secondBegun).toBe(false);
    await first.commit();
    const draft = await second;
    await draft.write([Buffer.from('Subject: 2\r\n\r\nhi\r\n')]);
    await draft.commit();
    expect((await keys()).filter((k) => k.endsWith('.eml'))).toHaveLength(2);
    expect(memory.usedBytes).toBe(0);
  });

  it('a missing bucket fails the message (temporary: the provider keeps it), leaving nothing', async () => {
    const sink = createS3MailSink({
      client: s3,
      bucket: 'no-such-bucket',
      partSize: 5 * MiB,
      queueSize: 1,
    });
    const draft = await sink.begin(envelope('x'));
    await draft.write([Buffer.from('Subject: x\r\n\r\nbody\r\n')]);
    await expect(draft.commit()).rejects.toMatchObject({
      kind: 'temporary',
      message: expect.stringMatching(/no-such-bucket/),
    });
    await draft.abort();
    expect(await keys()).toEqual([]);
  });

  it('an envelope that cannot be written fails the message and takes back the message stored beside it (nothing left)', async () => {
    const refusing = new S3Client({ ...moto.clientConfig, forcePathStyle: true });
    refusing.middlewareStack.add(
      (next, context) => async (args) => {
        const input = (args as { input: { Key?: string } }).input;
        if (context.commandName === 'PutObjectCommand' && input.Key?.endsWith('.json')) {
          throw Object.assign(new Error('Access Denied'), { name: 'AccessDenied' });
        }
        return next(args);
      },
      { step: 'initialize', name: 'refuseEnvelopes' },
    );
    try {
      const sink = createS3MailSink({ client: refusing, bucket, partSize: 5 * MiB, queueSize: 2 });
      const draft = await sink.begin(envelope('no-envelope'));
      await draft.write([Buffer.from('Subject: x\r\n\r\nbody\r\n')]);
      await expect(draft.commit()).rejects.toMatchObject({
        kind: 'temporary',
        message: expect.stringMatching(/cannot write the envelope.*AccessDenied/),
      });
      await draft.abort();
      expect(await keys()).toEqual([]);
    } finally {
      refusing.destroy();
    }
  });

  it('end to end: the provider delivers into the bucket; a cut mid-message leaves no object and no parts', async () => {
    const queue = [heldMessage(0), heldMessage(1, 7 * MiB), heldMessage(2, 7 * MiB)];
    const provider = await new AtrnProvider({
      queue,
      faults: { cutInData: { message: 2, afterBytes: 6 * MiB } },
    }).start();
    try {
      const sink = createS3MailSink({ client: s3, bucket, partSize: 5 * MiB, queueSize: 2 });
      const report = await releaseSignal(
        atrnTarget(provider.port),
        {},
        { credentials, helloName: 'mx.customer.test', receiver: createMailReceiver(sink) },
      );
      await provider.idle();
      expect(report).toMatchObject({ outcome: 'temporary-failure', messages: 2 });
      expect(provider.waiting).toEqual([2]);
      const emls = (await keys()).filter((k) => k.endsWith('.eml'));
      expect(emls).toHaveLength(2);
      for (const [i, key] of emls.entries()) {
        const record = JSON.parse((await get(key.replace(/\.eml$/, '.json'))).toString('utf8'));
        expect((await get(key)).subarray(record.traceBytes).equals(queue[i]!.text)).toBe(true);
      }
      expect(await keys()).toHaveLength(4);
      expect(await uploadsInProgress()).toEqual([]);
    } finally {
      await provider.stop();
    }
  });
});
