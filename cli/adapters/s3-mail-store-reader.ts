/**
 * The function's S3 mail store as `dequeue deliver` reads it (the layout is
 * lambda/adapters/s3-mail-sink.ts's):
 *
 *   <prefix><target>/<yyyy>/<mm>/<dd>/<id>.eml, .json    undelivered: the message and its envelope
 *   <prefix><target>/<yyyy>/<mm>/<dd>/<id>.claim         claimed by a running deliver (a lease)
 *   <prefix><target>/<yyyy>/<mm>/<dd>/<id>.progress      final answers of earlier runs
 *   <prefix>failed/<target>/<yyyy>/<mm>/<dd>/<id>.eml, .json, .replies.json
 *
 * Delivered messages are deleted (.eml first: its going takes the message out of the undelivered
 * set); the bucket is versioned, so the old version stays until the lifecycle rule expires it.
 *
 * The claim is an S3 conditional write: PutObject of `<id>.claim` with `If-None-Match: *`
 * succeeds for exactly one of two runs (S3 answers the other 412). The claim holds a lease
 * (CLAIM_LEASE_MS): a claim whose lease ran out (a run that crashed or was killed) is taken over
 * with `If-Match: <its ETag>`, which again only one run can win. The limit: a run that is still
 * delivering one message when its lease runs out (an hour) could see the message claimed by
 * another run, and it would then be delivered twice; no message is ever lost that way.
 */
import {
  CopyObjectCommand, DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command,
  PutObjectCommand, S3Client, type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Readable } from 'node:stream';
import { TARGET_NAME } from '../../lambda/core/config';
import { ConfigError, DequeueError } from '../../lambda/core/errors';
import type { EnvelopeRecord } from '../../lambda/core/odmr/envelope-record';
import type { ClaimedMail, MailStore, RecipientAnswer, StoredRef } from '../delivery/mail-store';

/** How long a claim holds before another run may take the message over. */
export const CLAIM_LEASE_MS = 60 * 60_000;

interface S3Ref extends StoredRef {
  /** The key without `.eml`. */
  readonly base: string;
  /** `<target>/<yyyy>/<mm>/<dd>/<id>`, for the failed/ key. */
  readonly rel: string;
}

interface ClaimRecord {
  readonly host: string;
  readonly pid: number;
  readonly nonce: string;
  readonly expiresAt: string;
}

/** The reader as the CLI opens it: the SDK's usual chain (AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL). */
export function openS3MailStoreReader(bucket: string, prefix: string, config: S3ClientConfig = {}): MailStore {
  // An emulator (AWS_ENDPOINT_URL) serves buckets by path, not by host name.
  const client = new S3Client({ forcePathStyle: Boolean(process.env.AWS_ENDPOINT_URL), ...config });
  return new S3MailStoreReader(client, bucket, prefix, () => client.destroy());
}

function s3Error(what: string, e: unknown): DequeueError {
  const name = (e as Error).name;
  if (name === 'NoSuchBucket' || name === 'AccessDenied' || name === 'InvalidAccessKeyId' || name === 'CredentialsProviderError') {
    return new ConfigError('--bucket', '', `${what}: ${name}: ${(e as Error).message}`, { cause: e });
  }
  return new DequeueError('temporary', `${what}: ${name}: ${(e as Error).message}`, { cause: e });
}

const status = (e: unknown) => (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
const notFound = (e: unknown) => status(e) === 404 || (e as Error).name === 'NoSuchKey' || (e as Error).name === 'NotFound';
const conflict = (e: unknown) => status(e) === 412 || status(e) === 409;

export class S3MailStoreReader implements MailStore {
  readonly name: string;

  constructor(
    private readonly client: S3Client,
    private readonly bucket: string,
    private readonly prefix: string,
    private readonly onClose: () => void = () => undefined,
  ) {
    this.name = `s3://${bucket}/${prefix}`;
  }

  async check(): Promise<void> {
    try {
      await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.prefix, MaxKeys: 1 }));
    } catch (e) {
      const error = s3Error(`cannot list ${this.name}`, e);
      throw error.kind === 'config' ? error : new ConfigError('--bucket', '', error.message, { cause: e });
    }
  }

  async list(targets?: readonly string[]): Promise<StoredRef[]> {
    const refs: S3Ref[] = [];
    for (const scope of targets ? targets.map((t) => `${this.prefix}${t}/`) : [this.prefix]) {
      let token: string | undefined;
      do {
        const page = await this.client
          .send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: scope, ContinuationToken: token }))
          .catch((e: unknown) => Promise.reject(s3Error(`cannot list ${this.name}`, e)));
        for (const item of page.Contents ?? []) {
          const rel = item.Key!.slice(this.prefix.length);
          // <target>/<yyyy>/<mm>/<dd>/<id>.eml; failed/<target>/... has one segment more.
          const m = /^([^/]+)\/(\d{4})\/(\d{2})\/(\d{2})\/([^/]+)\.eml$/.exec(rel);
          if (!m || !TARGET_NAME.test(m[1]!)) continue;
          refs.push({ id: m[5]!, target: m[1]!, base: item.Key!.slice(0, -4), rel: rel.slice(0, -4) });
        }
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
    }
    return refs.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : a.target < b.target ? -1 : 1));
  }

  async claim(ref: StoredRef): Promise<ClaimedMail | null> {
    const r = ref as S3Ref;
    const claimKey = `${r.base}.claim`;
    if (!(await this.takeClaim(claimKey))) return null;
    const release = () => this.delete(claimKey).catch(() => undefined);
    try {
      try {
        await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: `${r.base}.eml` }));
      } catch (e) {
        if (!notFound(e)) throw s3Error(`cannot read s3://${this.bucket}/${r.base}.eml`, e);
        await release();
        return null; // delivered by another run meanwhile
      }
      const envelope = JSON.parse(await this.text(`${r.base}.json`)) as EnvelopeRecord;
      if (typeof envelope.mailFrom !== 'string' || !Array.isArray(envelope.rcptTo)) {
        throw new DequeueError('temporary', `message ${r.id}: s3://${this.bucket}/${r.base}.json is not an envelope record; it is left where it is`);
      }
      // A progress record that is missing or unreadable means: every recipient still waits.
      const answered = await this.text(`${r.base}.progress`).then(
        (text) => (JSON.parse(text) as { answers: RecipientAnswer[] }).answers,
        () => [] as RecipientAnswer[],
      ).catch(() => [] as RecipientAnswer[]);
      return new S3Claim(this, r, envelope, Array.isArray(answered) ? answered : [], release);
    } catch (e) {
      await release();
      throw e instanceof DequeueError ? e : new DequeueError('temporary', `message ${r.id}: ${(e as Error).message}; it is left where it is`, { cause: e });
    }
  }

  /** PutObject If-None-Match; over an expired lease, If-Match its ETag. True when ours. */
  private async takeClaim(key: string): Promise<boolean> {
    const record = (): string => JSON.stringify({
      host: hostname(), pid: process.pid, nonce: randomBytes(8).toString('hex'),
      expiresAt: new Date(Date.now() + CLAIM_LEASE_MS).toISOString(),
    } satisfies ClaimRecord);
    try {
      await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: record(), IfNoneMatch: '*', ContentType: 'application/json' }));
      return true;
    } catch (e) {
      if (!conflict(e)) throw s3Error(`cannot claim s3://${this.bucket}/${key}`, e);
    }
    let held: { etag?: string; record: ClaimRecord };
    try {
      const got = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      held = { etag: got.ETag, record: JSON.parse(await got.Body!.transformToString()) as ClaimRecord };
    } catch (e) {
      if (notFound(e)) return false; // released just now; the next run takes it
      return false;
    }
    if (!(Date.parse(held.record.expiresAt) < Date.now()) || !held.etag) return false;
    try {
      await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: record(), IfMatch: held.etag, ContentType: 'application/json' }));
      return true;
    } catch (e) {
      if (conflict(e) || notFound(e)) return false;
      throw s3Error(`cannot take over s3://${this.bucket}/${key}`, e);
    }
  }

  private async text(key: string): Promise<string> {
    try {
      const got = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      return await got.Body!.transformToString();
    } catch (e) {
      if (notFound(e)) throw new DequeueError('temporary', `missing s3://${this.bucket}/${key}`);
      throw s3Error(`cannot read s3://${this.bucket}/${key}`, e);
    }
  }

  async stream(key: string): Promise<Readable> {
    try {
      const got = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      return got.Body as Readable;
    } catch (e) {
      throw s3Error(`cannot read s3://${this.bucket}/${key}`, e);
    }
  }

  async put(key: string, body: string): Promise<void> {
    try {
      await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: body, ContentType: 'application/json' }));
    } catch (e) {
      throw s3Error(`cannot write s3://${this.bucket}/${key}`, e);
    }
  }

  async copy(from: string, to: string): Promise<void> {
    try {
      await this.client.send(new CopyObjectCommand({ Bucket: this.bucket, Key: to, CopySource: `${this.bucket}/${from.split('/').map(encodeURIComponent).join('/')}` }));
    } catch (e) {
      throw s3Error(`cannot copy s3://${this.bucket}/${from} to ${to}`, e);
    }
  }

  async delete(key: string): Promise<void> {
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
    } catch (e) {
      throw s3Error(`cannot delete s3://${this.bucket}/${key}`, e);
    }
  }

  failedKey(ref: S3Ref): string {
    return `${this.prefix}failed/${ref.rel}`;
  }

  async close(): Promise<void> {
    this.onClose();
  }
}

class S3Claim implements ClaimedMail {
  constructor(
    private readonly store: S3MailStoreReader,
    readonly ref: S3Ref,
    readonly envelope: EnvelopeRecord,
    readonly answered: readonly RecipientAnswer[],
    private readonly unclaim: () => Promise<void>,
  ) {}

  async *open(): AsyncIterable<Buffer> {
    const body = await this.store.stream(`${this.ref.base}.eml`);
    for await (const chunk of body) yield Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
  }

  async delivered(): Promise<void> {
    try {
      // The .eml first: from here the message is out of the undelivered set.
      await this.store.delete(`${this.ref.base}.eml`);
      await this.store.delete(`${this.ref.base}.json`).catch(() => undefined);
      if (this.answered.length) await this.store.delete(`${this.ref.base}.progress`).catch(() => undefined);
    } finally {
      await this.unclaim();
    }
  }

  async failed(answers: readonly RecipientAnswer[]): Promise<void> {
    const to = this.store.failedKey(this.ref);
    try {
      await this.store.copy(`${this.ref.base}.json`, `${to}.json`);
      await this.store.put(`${to}.replies.json`, `${JSON.stringify({ id: this.ref.id, at: new Date().toISOString(), recipients: answers }, null, 2)}\n`);
      await this.store.copy(`${this.ref.base}.eml`, `${to}.eml`);
      await this.store.delete(`${this.ref.base}.eml`);
      await this.store.delete(`${this.ref.base}.json`).catch(() => undefined);
      if (this.answered.length) await this.store.delete(`${this.ref.base}.progress`).catch(() => undefined);
    } finally {
      await this.unclaim();
    }
  }

  async deferred(answers: readonly RecipientAnswer[]): Promise<void> {
    try {
      if (answers.length) await this.store.put(`${this.ref.base}.progress`, JSON.stringify({ answers }));
    } finally {
      await this.unclaim();
    }
  }

  release(): Promise<void> {
    return this.unclaim();
  }
}
