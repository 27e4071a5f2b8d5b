/**
 * End to end, the cloud way: the function pulls with ATRN into S3 (moto_server), and later
 * `dequeue deliver --bucket` hands the mail to the customer's own server (smtp-server), each
 * message with the envelope the provider gave.
 */
import {
  CreateBucketCommand,
  ListObjectsV2Command,
  PutBucketVersioningCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { S3MailStoreReader } from '../../cli/adapters/s3-mail-store-reader';
import { depsFromEnvironment } from '../../lambda/deployed-adapters';
import { createHandler } from '../../lambda/handler';
import { ACCOUNT, AtrnProvider } from '../../peers/atrn-provider';
import { runCli } from '../support/cli-run';
import { canonicalText, heldMessage } from '../core/odmr/odmr-fixtures';
import { AwsWorld, CapturedOutput, contextWith, ENV } from '../lambda/aws-world';
import { startCustomerMx } from '../postfix/customer-mx';
import { describeWithMotoServer, startMotoServer, type MotoServer } from '../servers/moto-server';

const BUCKET = 'dequeue-mail';

describeWithMotoServer(
  "ATRN in the function -> S3 -> dequeue deliver -> the customer's server",
  () => {
    let moto: MotoServer;
    let s3: S3Client;

    beforeAll(async () => {
      moto = await startMotoServer();
      s3 = new S3Client({ ...moto.clientConfig, forcePathStyle: true });
    });
    afterAll(async () => {
      s3?.destroy();
      await moto?.stop();
    });

    it('every message the provider released arrives once, with its envelope and its text as stored', async () => {
      const world = new AwsWorld(moto);
      await world.reset();
      await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
      await s3.send(
        new PutBucketVersioningCommand({
          Bucket: BUCKET,
          VersioningConfiguration: { Status: 'Enabled' },
        }),
      );
      await world.putSecret('dequeue/odmr', ACCOUNT);
      const queue = [heldMessage(0), heldMessage(1, 100_000), { ...heldMessage(2), from: '' }];
      const provider = await new AtrnProvider({ queue }).start();
      const mx = await startCustomerMx();
      try {
        await world.putSettings({ helloName: 'mx.customer.test' });
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
        const result = await createHandler(
          depsFromEnvironment({ ...ENV, DEQUEUE_MAIL_BUCKET: BUCKET }, moto.clientConfig),
        )({}, contextWith()).finally(() => output.restore());
        await provider.idle();
        expect(result.results).toMatchObject([{ outcome: 'signalled', messages: 3 }]);

        const out = await runCli(
          ['deliver', '--bucket', BUCKET, '--to', `smtp://127.0.0.1:${mx.port}`, '--json'],
          { openMailStore: () => new S3MailStoreReader(s3, BUCKET, 'mail/') },
        );
        expect(out.status).toBe(0);
        expect(out.json.map((r) => r.outcome)).toEqual(['delivered', 'delivered', 'delivered']);
        expect(mx.received).toHaveLength(3);
        for (const [i, m] of queue.entries()) {
          const got = mx.received.find((r) => r.header('Message-ID') === `<${i}@provider.test>`)!;
          expect([got.mailFrom, got.rcptTo]).toEqual([m.from, m.to]);
          // Our Received: header first, then the provider's text, canonical (stored as received,
          // its bare LF and CR became CRLF on the way out).
          expect(got.text).toMatch(/^Received: from provider\.test /);
          expect(got.text.endsWith(canonicalText(m.text).toString('utf8'))).toBe(true);
        }
        expect(
          (await s3.send(new ListObjectsV2Command({ Bucket: BUCKET }))).Contents ?? [],
        ).toEqual([]);
      } finally {
        await provider.stop();
        await mx.stop();
      }
    });

    it('with a relay as well: each message reaches the customer once (the relay), and deliver sends nothing again', async () => {
      const world = new AwsWorld(moto);
      await world.reset();
      const bucket = `${BUCKET}-relayed`;
      await s3.send(new CreateBucketCommand({ Bucket: bucket }));
      await world.putSecret('dequeue/odmr', ACCOUNT);
      const queue = [heldMessage(0), heldMessage(1)];
      const provider = await new AtrnProvider({ queue }).start();
      const mx = await startCustomerMx();
      try {
        await world.putSettings({ helloName: 'mx.customer.test' });
        await world.putTarget('odmr', {
          name: 'odmr',
          host: '127.0.0.1',
          port: provider.port,
          tls: 'none',
          auth: { secretId: 'dequeue/odmr' },
          command: 'ATRN',
          mail: {
            domains: ['customer.test'],
            relay: { host: '127.0.0.1', port: mx.port, tls: 'none' },
          },
        });
        const output = new CapturedOutput();
        const result = await createHandler(
          depsFromEnvironment({ ...ENV, DEQUEUE_MAIL_BUCKET: bucket }, moto.clientConfig),
        )({}, contextWith()).finally(() => output.restore());
        await provider.idle();
        expect(result.results).toMatchObject([{ outcome: 'signalled', messages: 2 }]);
        expect(mx.received).toHaveLength(2);

        const out = await runCli(
          ['deliver', '--bucket', bucket, '--to', `smtp://127.0.0.1:${mx.port}`, '--json'],
          { openMailStore: () => new S3MailStoreReader(s3, bucket, 'mail/') },
        );
        expect(out.status).toBe(0);
        expect(out.json).toEqual([]);
        expect(mx.received.map((r) => r.header('Message-ID')).sort()).toEqual([
          '<0@provider.test>',
          '<1@provider.test>',
        ]);
        // The archive keeps its copies, as a record outside the undelivered set.
        const keys = ((await s3.send(new ListObjectsV2Command({ Bucket: bucket }))).Contents ?? [])
          .map((o) => o.Key!.replace(/\/\d{4}\/\d{2}\/\d{2}\/[^/.]+\./, '/DAY/ID.'))
          .sort();
        expect(keys).toEqual([
          'mail/relayed/odmr/DAY/ID.eml',
          'mail/relayed/odmr/DAY/ID.eml',
          'mail/relayed/odmr/DAY/ID.json',
          'mail/relayed/odmr/DAY/ID.json',
        ]);
      } finally {
        await provider.stop();
        await mx.stop();
      }
    });
  },
);
