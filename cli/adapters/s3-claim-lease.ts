/**
 * The claim object of a message in the S3 mail store (cli/adapters/s3-mail-store-reader.ts has
 * the rules): written with If-None-Match to take it, with If-Match on its ETag to take over an
 * expired one or to renew our own.
 *
 * Our own write, retried. Each claim written carries a nonce of its own. When S3's answer to a
 * conditional PutObject is lost (a reset connection, a timeout), the SDK sends it again, and the
 * retry fails its own condition (412: the object is there, or its ETag changed, because the first
 * try went through). A 412 is therefore read back: a claim with our nonce is ours.
 *
 * The store's time. Whether another run's lease ran out is judged by S3's clock, never ours: the
 * claim's LastModified (when S3 stored it) plus the lease it was written with, against the Date
 * of S3's own answer to the read. Two machines whose clocks disagree by more than a lease would
 * otherwise take over each other's live claims (a duplicate delivery) or never take over a dead
 * one (mail stuck until the clocks agree).
 */
import {
  GetObjectCommand,
  type ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { allowExpiry, conflict, notFound, s3Error } from './s3-mail-objects';

interface ClaimRecord {
  readonly host: string;
  readonly pid: number;
  readonly nonce: string;
  /** By the writer's clock: for the operator's eyes; expiry is judged by S3's (above). */
  readonly expiresAt: string;
  /** The lease it was written with (absent in claims of older versions: ours is assumed). */
  readonly leaseMs?: number;
}

/** A claim as written: its ETag (for If-Match) and when its lease runs out (local clock). */
export interface Held {
  readonly etag: string;
  readonly expiresAt: number;
  /** Taken over from an expired lease rather than created. */
  readonly tookOver?: boolean;
}

/** A claim as read back: its ETag, its record, and its age by S3's clock (ms). */
interface ReadClaim {
  readonly etag?: string;
  readonly record: ClaimRecord;
  readonly ageMs: number;
}

export class S3ClaimLeases {
  constructor(
    private readonly client: S3Client,
    private readonly bucket: string,
    private readonly leaseMs: number,
  ) {}

  private record(): { body: string; nonce: string; expiresAt: number } {
    const expiresAt = Date.now() + this.leaseMs;
    const record: ClaimRecord = {
      host: hostname(),
      pid: process.pid,
      nonce: randomBytes(8).toString('hex'),
      expiresAt: new Date(expiresAt).toISOString(),
      leaseMs: this.leaseMs,
    };
    return { body: JSON.stringify(record), nonce: record.nonce, expiresAt };
  }

  /** PutObject If-None-Match; over an expired lease, If-Match its ETag. The claim when ours. */
  async take(key: string): Promise<Held | null> {
    const fresh = this.record();
    try {
      const put = await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: key,
          Body: fresh.body,
          IfNoneMatch: '*',
          ContentType: 'application/json',
        }),
      );
      return { etag: put.ETag ?? '', expiresAt: fresh.expiresAt };
    } catch (e) {
      if (!conflict(e)) throw s3Error(`cannot claim s3://${this.bucket}/${key}`, e);
    }
    const held = await this.read(key).catch(() => null);
    // Released just now (the next run takes it), or unreadable: left alone.
    if (!held?.etag) return null;
    // Our own claim: the SDK sent it again after S3's first answer was lost.
    if (held.record.nonce === fresh.nonce) return { etag: held.etag, expiresAt: fresh.expiresAt };
    if (held.ageMs < (validLease(held.record.leaseMs) ?? this.leaseMs)) return null;
    const taken = await this.renew(key, held.etag);
    return taken && { ...taken, tookOver: true };
  }

  /**
   * Write a fresh lease over the claim whose ETag is `etag` (If-Match): the claim, or null when
   * S3 refuses (412: another run's now; 404: gone). Other failures throw.
   */
  async renew(key: string, etag: string): Promise<Held | null> {
    // The lease it replaces becomes an old version: tagged, it may expire (a tag leaves the
    // ETag as it is, so If-Match below still decides whose the claim is).
    await allowExpiry(this.client, this.bucket, key);
    const fresh = this.record();
    try {
      const put = await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: key,
          Body: fresh.body,
          IfMatch: etag,
          ContentType: 'application/json',
        }),
      );
      return { etag: put.ETag ?? '', expiresAt: fresh.expiresAt };
    } catch (e) {
      if (notFound(e)) return null;
      if (!conflict(e)) throw s3Error(`cannot write the claim s3://${this.bucket}/${key}`, e);
    }
    // 412: another run's claim now, or ours, written by a first try whose answer was lost.
    const held = await this.read(key).catch(() => null);
    return held?.etag && held.record.nonce === fresh.nonce
      ? { etag: held.etag, expiresAt: fresh.expiresAt }
      : null;
  }

  /** The claim as S3 has it, with its age by S3's clock (its answer's Date less LastModified). */
  private async read(key: string): Promise<ReadClaim> {
    const get = new GetObjectCommand({ Bucket: this.bucket, Key: key });
    const storeNow = answerDate(get);
    const got = await this.client.send(get);
    const record = JSON.parse(await got.Body!.transformToString()) as ClaimRecord;
    if (typeof record?.nonce !== 'string') throw new Error('not a claim record');
    const written = got.LastModified?.getTime();
    // Without S3's dates (never seen from S3 itself) the writer's expiresAt and our clock decide.
    const ageMs =
      written !== undefined && storeNow() !== undefined
        ? storeNow()! - written
        : Date.now() -
          (Date.parse(record.expiresAt) - (validLease(record.leaseMs) ?? this.leaseMs));
    return { etag: got.ETag, record, ageMs };
  }
}

function validLease(ms: unknown): number | undefined {
  return typeof ms === 'number' && Number.isFinite(ms) && ms > 0 ? ms : undefined;
}

/**
 * The Date header of the answer to `command` once it is sent (RFC 9110 6.6.1: when the server
 * made the answer), by a middleware on that one command: S3's clock, read without a call more.
 */
export function answerDate(
  command: GetObjectCommand | ListObjectsV2Command,
): () => number | undefined {
  let date: number | undefined;
  (command as GetObjectCommand).middlewareStack.add(
    (next) => async (args) => {
      const out = await next(args);
      const headers = (out.response as { headers?: Record<string, string | undefined> })?.headers;
      const parsed = headers?.date === undefined ? Number.NaN : Date.parse(headers.date);
      if (Number.isFinite(parsed)) date = parsed;
      return out;
    },
    { step: 'deserialize', name: 'dequeueAnswerDate' },
  );
  return () => date;
}
