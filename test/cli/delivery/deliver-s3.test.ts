/**
 * `dequeue deliver --bucket` against moto_server's S3: the layout the function writes
 * (lambda/adapters/s3-mail-sink.ts), delivered into the scripted server. Delivered messages are
 * deleted (the versioned bucket keeps the old version), refused ones go under <prefix>failed/, a
 * 4xx keeps the message with the answers so far, and two runs at once deliver nothing twice.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { GetObjectCommand, ListObjectVersionsCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { expect, it } from 'vitest';
import { S3MailStoreReader } from '../../../cli/adapters/s3-mail-store-reader';
import { createS3MailSink } from '../../../lambda/adapters/s3-mail-sink';
import { describeWithMotoServer } from '../../servers/moto-server';
import { canonicalText } from '../../core/odmr/odmr-fixtures';
import { BUCKET, mailBucket } from './mail-bucket';
import { message, store } from './stored-mail';
import { runCli } from '../../support/cli-run';

describeWithMotoServer('dequeue deliver from S3', () => {
  const bucket = mailBucket();
  const { keys, server } = bucket;
  const io = { openMailStore: () => new S3MailStoreReader(bucket.s3, BUCKET, 'mail/') };
  const deliver = (port: number, ...more: string[]) =>
    runCli(
      ['deliver', '--bucket', BUCKET, '--to', `smtp://127.0.0.1:${port}`, '--json', ...more],
      io,
    );
  const messageIdOf = (text: Buffer) => /Message-ID: (<[^>]+>)/.exec(text.toString('latin1'))?.[1];

  it('delivers every message with its envelope, oldest first, and deletes it; the old version stays', async () => {
    const messages = [
      message(1, { to: ['a@customer.test', 'b@customer.test'] }),
      message(2, { from: '' }),
      message(3, { bodyBytes: 1024 * 1024 }),
    ];
    await store(createS3MailSink({ client: bucket.s3, bucket: BUCKET }), 'odmr', messages);
    const mx = await server();
    const out = await deliver(mx.port);
    expect(out.status).toBe(0);
    expect(out.json.map((r) => [r.message, r.outcome])).toEqual(
      messages.map((m) => [m.id, 'delivered']),
    );
    expect(mx.accepted.map((a) => [a.mailFrom, a.rcptTo, messageIdOf(a.text)])).toEqual(
      messages.map((m) => [m.mailFrom, m.rcptTo, m.messageId]),
    );
    // Canonical on the wire: the stored text's bare LF went out as CRLF.
    expect(mx.accepted[2]!.text.equals(canonicalText(messages[2]!.text))).toBe(true);
    expect(await keys()).toEqual([]);
    const versions = await bucket.s3.send(
      new ListObjectVersionsCommand({ Bucket: BUCKET, Prefix: 'mail/odmr/' }),
    );
    expect((versions.Versions ?? []).filter((v) => v.Key!.endsWith('.eml'))).toHaveLength(3);
  });

  it('550 for one recipient and 451 for another: kept with a progress record, then under failed/ with the replies', async () => {
    const m = message(1, {
      to: ['ok@customer.test', 'later@customer.test', 'nobody@customer.test'],
    });
    await store(createS3MailSink({ client: bucket.s3, bucket: BUCKET }), 'odmr', [m]);
    let later = '451 4.2.0 try later';
    const mx = await server({
      rcpt: (a) =>
        a.startsWith('nobody')
          ? '550 5.1.1 no such user'
          : a.startsWith('later')
            ? later
            : '250 Ok',
    });
    const first = await deliver(mx.port);
    expect(first).toMatchObject({ status: 1, json: [{ outcome: 'deferred' }] });
    expect((await keys()).map((k) => k.replace(/^.*\./, ''))).toEqual(['eml', 'json', 'progress']);
    later = '250 Ok';
    const second = await deliver(mx.port);
    expect(second).toMatchObject({ status: 1, json: [{ outcome: 'failed', dsn: null }] });
    // The DSN for nobody@ went with the first run, once.
    expect(first.json[0].dsn).toMatchObject({
      outcome: 'sent',
      recipients: ['nobody@customer.test'],
    });
    expect(mx.accepted.map((a) => [a.mailFrom === '' ? 'DSN' : 'mail', a.rcptTo])).toEqual([
      ['mail', ['ok@customer.test']],
      ['DSN', [m.mailFrom]],
      ['mail', ['later@customer.test']],
    ]);
    const left = await keys();
    expect(left.every((k) => k.startsWith('mail/failed/odmr/'))).toBe(true);
    expect(left.map((k) => k.replace(/^.*\/[^.]+\./, ''))).toEqual(['eml', 'json', 'replies.json']);
    const replies = JSON.parse(
      await (
        await bucket.s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: left[2]! }))
      ).Body!.transformToString(),
    );
    expect(replies.recipients.map((r: { code: number }) => r.code)).toEqual([250, 250, 550]);
    // failed/ is not the undelivered set: a third run has nothing to do.
    expect(await deliver(mx.port)).toMatchObject({ status: 0, json: [] });
  });

  it('two runs at once: every message delivered, none twice (conditional-write claims)', async () => {
    const messages = Array.from({ length: 12 }, (_, i) => message(i + 1));
    await store(createS3MailSink({ client: bucket.s3, bucket: BUCKET }), 'odmr', messages);
    const mx = await server();
    const [a, b] = await Promise.all([deliver(mx.port), deliver(mx.port)]);
    // A run that left mail to the other says so in its exit status (75).
    for (const run of [a, b])
      expect(run.status).toBe(/left to another run/.test(run.stderr) ? 75 : 0);
    expect(mx.accepted.map((x) => messageIdOf(x.text)).sort()).toEqual(
      messages.map((m) => m.messageId).sort(),
    );
    expect(await keys()).toEqual([]);
  });

  it('a claim whose lease ran out (a crashed run) is taken over; a live claim is left alone', async () => {
    const [m1, m2] = [message(1), message(2)];
    await store(createS3MailSink({ client: bucket.s3, bucket: BUCKET }), 'odmr', [m1, m2]);
    const base = async (id: string) =>
      (await keys()).find((k) => k.includes(id) && k.endsWith('.eml'))!.slice(0, -4);
    const claim = (expiresAt: string, leaseMs?: number) =>
      JSON.stringify({ host: 'elsewhere', pid: 1, nonce: 'n', expiresAt, leaseMs });
    // A lease is judged by S3's clock (its LastModified against the Date of its answer): m1's
    // one-millisecond lease has run out once S3's clock, which dates to the second, has moved on.
    await bucket.s3.send(
      new PutObjectCommand({
        Bucket: BUCKET,
        Key: `${await base(m1.id)}.claim`,
        Body: claim('2020-01-01T00:00:00Z', 1),
      }),
    );
    await sleep(1100);
    await bucket.s3.send(
      new PutObjectCommand({
        Bucket: BUCKET,
        Key: `${await base(m2.id)}.claim`,
        Body: claim('2999-01-01T00:00:00Z'),
      }),
    );
    const mx = await server();
    const out = await deliver(mx.port);
    expect(out.json.map((r) => r.message)).toEqual([m1.id]);
    expect((await keys()).map((k) => k.replace(/^.*\./, ''))).toEqual(['claim', 'eml', 'json']);
  });

  it('a bucket that does not exist: exit 2, nothing sent', async () => {
    const mx = await server();
    const out = await runCli(
      ['deliver', '--bucket', 'no-such-bucket', '--to', `smtp://127.0.0.1:${mx.port}`],
      { openMailStore: () => new S3MailStoreReader(bucket.s3, 'no-such-bucket', 'mail/') },
    );
    expect(out.status).toBe(2);
    expect(out.stderr).toMatch(/NoSuchBucket/);
    expect(mx.connections).toBe(0);
  });
});
