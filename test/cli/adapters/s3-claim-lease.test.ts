/**
 * The S3 claims of `dequeue deliver` (cli/adapters/s3-claim-lease.ts) against moto_server's S3:
 * - a claim or a renewal whose answer is lost (a proxy lets S3 do the write and cuts the
 *   connection): the SDK sends it again, the retry fails its own condition (412), and the claim is
 *   still known for ours by its nonce: the message is delivered, not left as another run's;
 * - a lease is judged by S3's clock (LastModified, the Date of its answer), not the local one: a
 *   clock two hours ahead leaves another run's live claim alone, and a clock two hours behind
 *   still takes over a claim whose lease ran out.
 */
import {
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, expect, it, vi } from 'vitest';
import { S3ClaimLeases } from '../../../cli/adapters/s3-claim-lease';
import { S3MailStoreReader } from '../../../cli/adapters/s3-mail-store-reader';
import { createS3MailSink } from '../../../lambda/adapters/s3-mail-sink';
import { describeWithMotoServer } from '../../servers/moto-server';
import {
  startAnswerDroppingProxy,
  type AnswerDroppingProxy,
  type ProxiedRequest,
} from '../../support/answer-dropping-proxy';
import { runCli } from '../../support/cli-run';
import { BUCKET, mailBucket } from '../delivery/mail-bucket';
import { message, store, type StoredMessage } from '../delivery/stored-mail';

const HOUR = 3_600_000;

describeWithMotoServer("deliver's S3 claims: retried writes and the store's clock", () => {
  const bucket = mailBucket();
  let proxy: AnswerDroppingProxy | undefined;
  let proxied: S3Client | undefined;
  afterEach(async () => {
    vi.restoreAllMocks();
    proxied?.destroy();
    proxied = undefined;
    await proxy?.stop();
    proxy = undefined;
  });

  const claimKeyOf = async (m: StoredMessage) => {
    const listed = await bucket.s3.send(new ListObjectsV2Command({ Bucket: BUCKET }));
    return listed.Contents!.find((o) => o.Key!.includes(m.id))!.Key!.replace(/\.[a-z]+$/, '.claim');
  };
  const text = async (Key: string) =>
    (await bucket.s3.send(new GetObjectCommand({ Bucket: BUCKET, Key }))).Body!.transformToString();
  /** An S3 client whose requests pass a proxy that loses the first answer `drop` picks. */
  async function losing(drop: (r: ProxiedRequest) => boolean): Promise<S3Client> {
    proxy = await startAnswerDroppingProxy(bucket.moto.port, (r, n) => n === 0 && drop(r));
    proxied = new S3Client({
      ...bucket.moto.clientConfig,
      endpoint: proxy.endpoint,
      forcePathStyle: true,
    });
    return proxied;
  }
  const claimPut = (condition: 'if-none-match' | 'if-match') => (r: ProxiedRequest) =>
    r.method === 'PUT' && /\.claim(\?|$)/.test(r.url) && r.headers[condition] !== undefined;
  const deliver = (port: number, s3: S3Client = bucket.s3) =>
    runCli(['deliver', '--bucket', BUCKET, '--to', `smtp://127.0.0.1:${port}`, '--json'], {
      openMailStore: (from, notice) =>
        new S3MailStoreReader(s3, BUCKET, 'mail/', { dryRun: from.dryRun, notice }),
    });
  /** The local clock `skewMs` off for the rest of the test (restored after it). */
  function skewClock(skewMs: number): void {
    const real = Date.now.bind(Date);
    vi.spyOn(Date, 'now').mockImplementation(() => real() + skewMs);
  }

  it('a claim whose answer was lost is ours: the message is delivered once', async () => {
    const m = message(1);
    await store(createS3MailSink({ client: bucket.s3, bucket: BUCKET }), 'odmr', [m]);
    const server = await bucket.server();
    const s3 = await losing(claimPut('if-none-match'));

    const out = await deliver(server.port, s3);

    expect(proxy!.dropped).toHaveLength(1);
    expect(proxy!.requests.filter(claimPut('if-none-match'))).toHaveLength(2);
    expect(out).toMatchObject({ status: 0, json: [{ message: m.id, outcome: 'delivered' }] });
    expect(server.accepted).toHaveLength(1);
    expect(await bucket.keys()).toEqual([]);
  });

  it('a renewal whose answer was lost is still ours', async () => {
    const m = message(1);
    await store(createS3MailSink({ client: bucket.s3, bucket: BUCKET }), 'odmr', [m]);
    const key = await claimKeyOf(m);
    const leases = new S3ClaimLeases(await losing(claimPut('if-match')), BUCKET, HOUR);
    const taken = await leases.take(key);
    expect(taken).not.toBeNull();

    const renewed = await leases.renew(key, taken!.etag);

    expect(proxy!.dropped).toHaveLength(1);
    expect(proxy!.requests.filter(claimPut('if-match'))).toHaveLength(2);
    expect(renewed).not.toBeNull();
    // Ours still: a second renewal on the ETag it returned goes through.
    expect(await leases.renew(key, renewed!.etag)).not.toBeNull();
  });

  it("a clock two hours ahead leaves another run's live claim to it", async () => {
    const m = message(1);
    await store(createS3MailSink({ client: bucket.s3, bucket: BUCKET }), 'odmr', [m]);
    const key = await claimKeyOf(m);
    expect(await new S3ClaimLeases(bucket.s3, BUCKET, HOUR).take(key)).not.toBeNull();
    const theirs = await text(key);
    const server = await bucket.server();

    skewClock(2 * HOUR);
    const out = await deliver(server.port);

    // Left to the run that holds it: not delivered by this one (exit status 75).
    expect(out).toMatchObject({ status: 75, json: [] });
    expect(server.accepted).toEqual([]);
    expect(await text(key)).toBe(theirs);
  });

  it('a clock two hours behind still takes over a claim whose lease ran out', async () => {
    const m = message(1);
    await store(createS3MailSink({ client: bucket.s3, bucket: BUCKET }), 'odmr', [m]);
    const key = await claimKeyOf(m);
    // A run that died holding a one-second lease, by its own (right) clock.
    await bucket.s3.send(
      new PutObjectCommand({
        Bucket: BUCKET,
        Key: key,
        Body: JSON.stringify({
          host: 'gone-host',
          pid: 4242,
          nonce: 'theirs',
          expiresAt: new Date(Date.now() + 1000).toISOString(),
          leaseMs: 1000,
        }),
      }),
    );
    // S3 dates to the second: past the lease by its clock.
    await sleep(2100);
    const server = await bucket.server();

    skewClock(-2 * HOUR);
    const out = await deliver(server.port);

    expect(out).toMatchObject({ status: 0, json: [{ message: m.id, outcome: 'delivered' }] });
    expect(server.accepted).toHaveLength(1);
  });
});
