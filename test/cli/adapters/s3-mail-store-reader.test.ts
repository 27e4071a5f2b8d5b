/**
 * The S3 store's own hazards, against moto_server's S3, through `dequeue deliver --bucket`:
 * - crash orphans: an `.eml` without its `.json` (the function stopped between the two requests
 *   of its commit, before its 250), an envelope without its message, a deliver run's leftovers.
 *   Old ones are removed, once, with a line each, and counted as no message; young ones (a
 *   message being committed right now) are left alone and not reported;
 * - the claim's lease, renewed while a slow message is being delivered, so another run cannot
 *   take it over; a renewal refused (another run took it) means no mark, said so;
 * - a message over the single-copy limit goes to failed/ as a multipart copy (the limit lowered);
 * - what deliver takes out is tagged for the bucket's expiry first; nothing else is.
 */
import {
  DeleteObjectCommand,
  GetObjectCommand,
  GetObjectTaggingCommand,
  HeadObjectCommand,
  ListObjectVersionsCommand,
  PutObjectCommand,
} from '@aws-sdk/client-s3';
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect, it } from 'vitest';
import {
  S3MailStoreReader,
  type S3MailStoreReaderOptions,
} from '../../../cli/adapters/s3-mail-store-reader';
import { createS3MailSink } from '../../../lambda/adapters/s3-mail-sink';
import { describeWithMotoServer } from '../../servers/moto-server';
import { watchLeftovers } from '../../support/no-leftovers';
import { BUCKET, mailBucket } from '../delivery/mail-bucket';
import { message, store, type StoredMessage } from '../delivery/stored-mail';
import { runCli } from '../../support/cli-run';

describeWithMotoServer(
  'the S3 store read by dequeue deliver: orphans, lease renewal, large copies',
  () => {
    const bucket = mailBucket();
    const { keys, server } = bucket;
    const keyOf = async (m: StoredMessage, kind: string) =>
      (await keys()).find((k) => k.includes(m.id) && k.endsWith('.eml'))!.replace(/eml$/, kind);
    const deliver = (port: number, options: S3MailStoreReaderOptions = {}, ...more: string[]) =>
      runCli(
        ['deliver', '--bucket', BUCKET, '--to', `smtp://127.0.0.1:${port}`, '--json', ...more],
        {
          openMailStore: (from, notice) =>
            new S3MailStoreReader(bucket.s3, BUCKET, 'mail/', {
              dryRun: from.dryRun,
              notice,
              ...options,
            }),
        },
      );
    /** A server that holds its answer to the first final dot until `letGo()`; `held` once it does. */
    async function slowServer() {
      let holding!: () => void;
      const held = new Promise<void>((r) => (holding = r));
      let letGo: (() => void) | undefined;
      const slow = await server({
        holdFinal: () => (holding(), new Promise<void>((r) => (letGo = r))),
      });
      return { slow, held, letGo: () => letGo!() };
    }
    const lines = (stderr: string, what: RegExp) => stderr.split('\n').filter((l) => what.test(l));
    const sha = (b: Buffer | Uint8Array) => createHash('sha256').update(b).digest('hex');
    const body = async (Key: string, VersionId?: string) =>
      Buffer.from(
        await (
          await bucket.s3.send(new GetObjectCommand({ Bucket: BUCKET, Key, VersionId }))
        ).Body!.transformToByteArray(),
      );
    /** What the function would have left had it stopped between its two requests. */
    async function orphans() {
      const [lonelyMessage, lonelyEnvelope, complete] = [message(1), message(2), message(3)];
      await store(createS3MailSink({ client: bucket.s3, bucket: BUCKET }), 'odmr', [
        lonelyMessage,
        lonelyEnvelope,
        complete,
      ]);
      const eml = await keyOf(lonelyMessage, 'eml');
      const json = await keyOf(lonelyEnvelope, 'json');
      await bucket.s3.send(
        new DeleteObjectCommand({ Bucket: BUCKET, Key: await keyOf(lonelyMessage, 'json') }),
      );
      await bucket.s3.send(
        new DeleteObjectCommand({ Bucket: BUCKET, Key: await keyOf(lonelyEnvelope, 'eml') }),
      );
      return { eml, json, complete };
    }

    it('old orphans are removed once, one line each, and are no message; the bucket keeps their versions', async () => {
      const { eml, json, complete } = await orphans();
      // And what a deliver run that stopped after a delete leaves: a progress record alone.
      const progress = eml.replace(/\/[^/]+\.eml$/, '/20261130T000000000Z-00000000dead.progress');
      await bucket.s3.send(
        new PutObjectCommand({ Bucket: BUCKET, Key: progress, Body: '{"answers":[]}' }),
      );
      const mx = await server();
      // Two runs at once: each leftover is removed by one of them, said once.
      const runs = await Promise.all([
        deliver(mx.port, { orphanGraceMs: 0 }),
        deliver(mx.port, { orphanGraceMs: 0 }),
      ]);
      // A run that left the message to the other says so in its exit status (75).
      for (const run of runs)
        expect(run.status).toBe(/left to another run/.test(run.stderr) ? 75 : 0);
      expect(runs.flatMap((r) => r.json).map((r) => [r.message, r.outcome])).toEqual([
        [complete.id, 'delivered'],
      ]);
      expect(mx.accepted).toHaveLength(1);
      const stderr = runs.map((r) => r.stderr).join('');
      expect(lines(stderr, /removed/)).toHaveLength(3);
      expect(
        lines(
          stderr,
          new RegExp(
            `removed s3://${BUCKET}/${eml}: a message without its envelope .*provider still has the message and delivers it again.*versioned bucket keeps`,
          ),
        ),
      ).toHaveLength(1);
      expect(
        lines(
          stderr,
          new RegExp(`removed s3://${BUCKET}/${json}: an envelope without its message`),
        ),
      ).toHaveLength(1);
      expect(
        lines(stderr, new RegExp(`removed s3://${BUCKET}/${progress}: left by a deliver run`)),
      ).toHaveLength(1);
      // Counted as no message: only the complete one in the summary.
      expect(lines(stderr, /1 message\(s\) .*1 delivered, 0 deferred, 0 failed/)).toHaveLength(1);
      expect(await keys()).toEqual([]);
      const versions = await bucket.s3.send(
        new ListObjectVersionsCommand({ Bucket: BUCKET, Prefix: 'mail/' }),
      );
      expect((versions.Versions ?? []).map((v) => v.Key)).toEqual(
        expect.arrayContaining([eml, json]),
      );
      // Once per object: the next run has nothing to say.
      const again = await deliver(mx.port, { orphanGraceMs: 0 });
      expect(again).toMatchObject({ status: 0, json: [] });
      expect(lines(again.stderr, /remove/)).toEqual([]);
    });

    it('young orphans (a message being committed right now) are left alone and not reported; a dry run only names old ones', async () => {
      const { eml, json, complete } = await orphans();
      const mx = await server();
      const first = await deliver(mx.port);
      expect(first.status).toBe(0);
      expect(first.json.map((r) => r.message)).toEqual([complete.id]);
      expect(lines(first.stderr, /remove|envelope|orphan/)).toEqual([]);
      expect(await keys()).toEqual([eml, json].sort());

      const dry = await deliver(mx.port, { orphanGraceMs: 0 }, '--dry-run');
      expect(dry.status).toBe(0);
      expect(
        lines(dry.stderr, /^dequeue deliver: would remove s3:\/\/.*a dry run changes nothing/),
      ).toHaveLength(2);
      expect(lines(dry.stderr, /removed/)).toEqual([]);
      expect(await keys()).toEqual([eml, json].sort());
      expect(mx.connections).toBe(1);
    });

    it('a message slower than its lease keeps its claim (renewed): a second run does not take it over, no timer is left', async () => {
      // S3 dates to the second: a lease judged by its clock is a second coarse, and the renewals
      // (every quarter lease) must stay well inside it on a loaded machine.
      const leaseMs = 4000;
      const m = message(1);
      await store(createS3MailSink({ client: bucket.s3, bucket: BUCKET }), 'odmr', [m]);
      const { slow, held, letGo } = await slowServer();
      const other = await server();
      const leftovers = watchLeftovers();
      const first = deliver(slow.port, { leaseMs });
      await held;
      // Past the lease the claim was written with: without renewal it would be free to take.
      const claimed = JSON.parse((await body(await keyOf(m, 'claim'))).toString()) as {
        expiresAt: string;
      };
      while (Date.now() <= Date.parse(claimed.expiresAt) + 500) await sleep(100);
      const second = await deliver(other.port, { leaseMs });
      // Left to the first run: not delivered by this one (exit status 75).
      expect(second).toMatchObject({ status: 75, json: [] });
      expect(other.accepted).toEqual([]);
      letGo();
      const out = await first;
      expect(out).toMatchObject({ status: 0, json: [{ message: m.id, outcome: 'delivered' }] });
      expect(slow.accepted).toHaveLength(1);
      expect(await keys()).toEqual([]);
      expect(await leftovers.settle()).toEqual([]);
    });

    it('a renewal refused (another run holds the claim now): no mark, the claim left to that run, said so', async () => {
      const m = message(1);
      await store(createS3MailSink({ client: bucket.s3, bucket: BUCKET }), 'odmr', [m]);
      const { slow, held, letGo } = await slowServer();
      let noticed!: () => void;
      const lost = new Promise<void>((r) => (noticed = r));
      const run = runCli(
        ['deliver', '--bucket', BUCKET, '--to', `smtp://127.0.0.1:${slow.port}`, '--json'],
        {
          openMailStore: (_, notice) =>
            new S3MailStoreReader(bucket.s3, BUCKET, 'mail/', {
              leaseMs: 2000,
              notice: (text) => {
                notice(text);
                if (/taken over/.test(text)) noticed();
              },
            }),
        },
      );
      await held;
      // What a run taking over an expired claim writes (If-Match on the old ETag: it wins).
      const claimKey = await keyOf(m, 'claim');
      const theirs = JSON.stringify({
        host: 'other-host',
        pid: 4242,
        nonce: 'theirs',
        expiresAt: '2999-01-01T00:00:00Z',
      });
      await bucket.s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: claimKey, Body: theirs }));
      await lost;
      letGo();
      const out = await run;
      expect(out.status).toBe(1);
      expect(out.json).toMatchObject([
        {
          message: m.id,
          outcome: 'deferred',
          error: expect.stringMatching(
            /^delivered, but its claim .* was taken over by another run.*marks nothing/,
          ),
        },
      ]);
      expect(
        lines(out.stderr, new RegExp(`message ${m.id} \\(odmr\\): its claim .*taken over`)),
      ).toHaveLength(1);
      // Still in the undelivered set, the other run's claim untouched.
      expect((await keys()).map((k) => k.replace(/^.*\./, ''))).toEqual(['claim', 'eml', 'json']);
      expect((await body(claimKey)).toString()).toBe(theirs);
    });

    it('a claim lost while the text is still being sent: the connection is cut, so the server does not take it', async () => {
      const m = message(1, { bodyBytes: 20 * 1024 * 1024 });
      await store(createS3MailSink({ client: bucket.s3, bucket: BUCKET }), 'odmr', [m]);
      let stalling!: () => void;
      const stalled = new Promise<void>((r) => (stalling = r));
      let resume!: () => void;
      const resumed = new Promise<void>((r) => (resume = r));
      const mx = await server({
        stallInData: { message: 0, afterBytes: 1024 * 1024, until: () => (stalling(), resumed) },
      });
      let noticed!: () => void;
      const lost = new Promise<void>((r) => (noticed = r));
      const run = runCli(
        ['deliver', '--bucket', BUCKET, '--to', `smtp://127.0.0.1:${mx.port}`, '--json'],
        {
          openMailStore: (_, notice) =>
            new S3MailStoreReader(bucket.s3, BUCKET, 'mail/', {
              leaseMs: 2000,
              notice: (text) => {
                notice(text);
                if (/taken over/.test(text)) noticed();
              },
            }),
        },
      );
      await stalled;
      const claimKey = await keyOf(m, 'claim');
      const theirs = JSON.stringify({
        host: 'other-host',
        pid: 4242,
        nonce: 'theirs',
        expiresAt: '2999-01-01T00:00:00Z',
      });
      await bucket.s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: claimKey, Body: theirs }));
      await lost;
      resume();
      const out = await run;
      expect(out.status).toBe(1);
      expect(out.json).toMatchObject([
        {
          message: m.id,
          outcome: 'deferred',
          error: expect.stringMatching(/taken over by another run/),
        },
      ]);
      // A count, not the messages: a 20 MB text in a failure's diff would not help anyone.
      expect(mx.accepted.length).toBe(0);
      expect((await keys()).map((k) => k.replace(/^.*\./, ''))).toEqual(['claim', 'eml', 'json']);
      expect((await body(claimKey)).toString()).toBe(theirs);
    });

    it('what deliver took out (delivered, set aside, its claims) may expire; a version the function withdrew, and mail to deliver, may not', async () => {
      const [delivered, refused, waiting] = [
        message(1),
        message(2, { to: ['nobody@customer.test'] }),
        message(3, { to: ['later@customer.test'] }),
      ];
      await store(createS3MailSink({ client: bucket.s3, bucket: BUCKET }), 'odmr', [
        delivered,
        refused,
        waiting,
      ]);
      // The function withdrew an envelope (a message it could not acknowledge): its own delete.
      const withdrawn = message(4);
      await store(createS3MailSink({ client: bucket.s3, bucket: BUCKET }), 'odmr', [withdrawn]);
      const withdrawnKeys = [await keyOf(withdrawn, 'eml'), await keyOf(withdrawn, 'json')];
      for (const Key of withdrawnKeys)
        await bucket.s3.send(new DeleteObjectCommand({ Bucket: BUCKET, Key }));
      const waitingKeys = [await keyOf(waiting, 'eml'), await keyOf(waiting, 'json')];
      const mx = await server({
        rcpt: (a) =>
          a.startsWith('nobody')
            ? '550 5.1.1 no such user'
            : a.startsWith('later')
              ? '451 4.3.0 later'
              : '250 2.1.5 ok',
      });
      const out = await deliver(mx.port);
      expect(out.json.map((r) => [r.message, r.outcome]).sort()).toEqual([
        [delivered.id, 'delivered'],
        [refused.id, 'failed'],
        [waiting.id, 'deferred'],
      ]);

      const listed = await bucket.s3.send(
        new ListObjectVersionsCommand({ Bucket: BUCKET, Prefix: 'mail/' }),
      );
      const tagged = async (Key: string, VersionId: string) =>
        (
          await bucket.s3.send(new GetObjectTaggingCommand({ Bucket: BUCKET, Key, VersionId }))
        ).TagSet?.map((t) => `${t.Key}=${t.Value}`) ?? [];
      const old: Record<string, string[]> = {};
      for (const v of listed.Versions ?? []) {
        const tags = await tagged(v.Key!, v.VersionId!);
        if (v.IsLatest) {
          // Current versions (mail still to deliver, what is under failed/) carry no tag.
          expect(tags, v.Key).toEqual([]);
          continue;
        }
        old[v.Key!.replace(/^mail\/(failed\/)?odmr\/\d{4}\/\d\d\/\d\d\//, '')] = tags;
      }
      const allowed = ['dequeue-expiry=allowed'];
      expect(old).toEqual({
        [`${delivered.id}.eml`]: allowed,
        [`${delivered.id}.json`]: allowed,
        [`${delivered.id}.claim`]: allowed,
        [`${refused.id}.eml`]: allowed,
        [`${refused.id}.json`]: allowed,
        [`${refused.id}.claim`]: allowed,
        // Its final answers, recorded before its DSN went out.
        [`${refused.id}.progress`]: allowed,
        [`${waiting.id}.claim`]: allowed,
        // The function's own deletes: kept until someone deletes them by hand.
        [`${withdrawn.id}.eml`]: [],
        [`${withdrawn.id}.json`]: [],
      });
      expect(await keys()).toEqual(expect.arrayContaining([...waitingKeys]));
    });

    it('a message over the single-copy limit goes to failed/ copied in parts, byte for byte', async () => {
      const m = message(1, { to: ['nobody@customer.test'], bodyBytes: 12 * 1024 * 1024 });
      await store(createS3MailSink({ client: bucket.s3, bucket: BUCKET }), 'odmr', [m]);
      const stored = sha(await body(await keyOf(m, 'eml')));
      const mx = await server({ rcpt: () => '550 5.1.1 no such user' });
      const out = await deliver(mx.port, {
        multipartCopyAboveBytes: 6 * 1024 * 1024,
        copyPartBytes: 5 * 1024 * 1024,
      });
      expect(out).toMatchObject({ status: 1, json: [{ message: m.id, outcome: 'failed' }] });
      const left = await keys();
      expect(left.map((k) => k.replace(/^mail\/failed\/odmr\/.*\/[^.]+\./, ''))).toEqual([
        'eml',
        'json',
        'replies.json',
      ]);
      const copy = left.find((k) => k.endsWith('.eml'))!;
      expect(sha(await body(copy))).toBe(stored);
      // A multipart object's ETag names its parts: 12 MiB and a trace header in 5 MiB ranges.
      const head = await bucket.s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: copy }));
      expect(head.ETag).toMatch(/-3"$/);
      expect(head.ContentType).toBe('message/rfc822');
    });
  },
);
