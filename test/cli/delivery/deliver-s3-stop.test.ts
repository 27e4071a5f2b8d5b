/**
 * SIGINT to `dequeue deliver --bucket` (the real binary, S3 on moto_server): the message on the
 * wire is answered and deleted as delivered, the claims taken ahead are given back, so no
 * `.claim` object is left to hold the others for an hour; the two messages not started stay
 * whole for the next run; QUIT; exit 130.
 */
import { expect, it } from 'vitest';
import { createS3MailSink } from '../../../lambda/adapters/s3-mail-sink';
import { describeWithMotoServer } from '../../servers/moto-server';
import { Running } from '../../support/signalled-process';
import { BUCKET, mailBucket } from './mail-bucket';
import { message, store } from './stored-mail';

describeWithMotoServer('a stopped deliver from S3', () => {
  const bucket = mailBucket();

  it('SIGINT with a message on the wire: it is delivered and deleted, no claim is left, the rest stay; exit 130', async () => {
    const messages = [message(1), message(2), message(3)];
    await store(createS3MailSink({ client: bucket.s3, bucket: BUCKET }), 'odmr', messages);
    let reached!: () => void;
    const onTheWire = new Promise<void>((resolve) => (reached = resolve));
    let answer!: () => void;
    const held = new Promise<void>((resolve) => (answer = resolve));
    const mx = await bucket.server({
      holdFinal: (n) => (n === 0 ? (reached(), held) : undefined),
    });
    const { moto } = bucket;
    const run = new Running(
      [
        'deliver',
        '--bucket',
        BUCKET,
        '--to',
        `smtp://127.0.0.1:${mx.port}`,
        '--connections',
        '1',
        '--json',
      ],
      {
        AWS_ENDPOINT_URL: moto.endpoint,
        AWS_REGION: moto.clientConfig.region,
        AWS_ACCESS_KEY_ID: moto.clientConfig.credentials.accessKeyId,
        AWS_SECRET_ACCESS_KEY: moto.clientConfig.credentials.secretAccessKey,
        AWS_EC2_METADATA_DISABLED: 'true',
      },
    );
    try {
      await onTheWire;
      // The message on the wire and those claimed ahead hold claims now.
      expect((await bucket.keys()).filter((k) => k.endsWith('.claim')).length).toBeGreaterThan(1);
      run.signal('SIGINT');
      await run.said(/SIGINT: ending the sessions under way properly/);
    } finally {
      answer();
    }
    expect(await run.exited).toBe(130);

    expect(run.results).toEqual([
      expect.objectContaining({ message: messages[0]!.id, outcome: 'delivered' }),
    ]);
    expect(mx.accepted).toHaveLength(1);
    expect(mx.lines.at(-1)).toBe('QUIT');
    expect(run.stderr).toMatch(/stopped by SIGINT: 2 message\(s\) not started/);
    // No claim left; the two not started are there whole, envelope and all.
    const left = await bucket.keys();
    expect(left.filter((k) => k.endsWith('.claim'))).toEqual([]);
    expect(left.map((k) => k.replace(/^.*\/([^/.]+)\.(\w+)$/, '$1.$2')).sort()).toEqual(
      [messages[1]!.id, messages[2]!.id].flatMap((id) => [`${id}.eml`, `${id}.json`]).sort(),
    );
  });
});
