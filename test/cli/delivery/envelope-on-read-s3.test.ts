/**
 * Issue 17 item 3, in S3 (moto_server): a stored envelope is checked when `deliver` reads it;
 * a bad one goes under <prefix>failed/ with the reason in its replies record, and nothing of it
 * reaches the server.
 */
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { expect, it } from 'vitest';
import { S3MailStoreReader } from '../../../cli/adapters/s3-mail-store-reader';
import { createS3MailSink } from '../../../lambda/adapters/s3-mail-sink';
import { describeWithMotoServer } from '../../servers/moto-server';
import { runCli } from '../../support/cli-run';
import { HOSTILE_ENVELOPES } from './hostile-envelopes';
import { BUCKET, mailBucket } from './mail-bucket';
import { message, store } from './stored-mail';

describeWithMotoServer('deliver checks each stored envelope on read (S3)', () => {
  const bucket = mailBucket();
  const { keys, server } = bucket;
  const io = { openMailStore: () => new S3MailStoreReader(bucket.s3, BUCKET, 'mail/') };
  const text = async (Key: string) =>
    (await bucket.s3.send(new GetObjectCommand({ Bucket: BUCKET, Key }))).Body!.transformToString();

  it.each(HOSTILE_ENVELOPES)('$name: under failed/ with the reason, nothing sent', async (c) => {
    const bad = message(1);
    const good = message(2);
    await store(createS3MailSink({ client: bucket.s3, bucket: BUCKET }), 'odmr', [bad, good]);
    const key = (await keys()).find((k) => k.endsWith(`${bad.id}.json`))!;
    const made = c.make(JSON.parse(await text(key)));
    await bucket.s3.send(
      new PutObjectCommand({
        Bucket: BUCKET,
        Key: key,
        Body: typeof made === 'string' ? made : JSON.stringify(made),
      }),
    );
    const mx = await server();
    const out = await runCli(
      ['deliver', '--bucket', BUCKET, '--to', `smtp://127.0.0.1:${mx.port}`, '--json'],
      io,
    );
    expect(out.status).toBe(1);
    expect(out.json).toMatchObject([
      { message: bad.id, outcome: 'failed' },
      { message: good.id, outcome: 'delivered' },
    ]);
    expect(out.json[0]!.error).toMatch(c.reason);
    expect(mx.lines.filter((l) => /^RCPT/i.test(l))).toEqual([`RCPT TO:<${good.rcptTo[0]}>`]);
    expect(mx.accepted).toHaveLength(1);
    const left = await keys();
    expect(left.every((k) => k.startsWith('mail/failed/odmr/'))).toBe(true);
    const replies = JSON.parse(await text(left.find((k) => k.endsWith('.replies.json'))!));
    expect(replies.reason).toMatch(c.reason);
  });
});
