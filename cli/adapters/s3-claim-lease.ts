/**
 * The claim object of a message in the S3 mail store (cli/adapters/s3-mail-store-reader.ts has
 * the rules): written with If-None-Match to take it, with If-Match on its ETag to take over an
 * expired one or to renew our own.
 */
import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { allowExpiry, conflict, notFound, s3Error } from './s3-mail-objects';

interface ClaimRecord {
  readonly host: string;
  readonly pid: number;
  readonly nonce: string;
  readonly expiresAt: string;
}

/** A claim as written: its ETag (for If-Match) and when its lease runs out. */
export interface Held {
  readonly etag: string;
  readonly expiresAt: number;
  /** Taken over from an expired lease rather than created. */
  readonly tookOver?: boolean;
}

export class S3ClaimLeases {
  constructor(
    private readonly client: S3Client,
    private readonly bucket: string,
    private readonly leaseMs: number,
  ) {}

  private record(): { body: string; expiresAt: number } {
    const expiresAt = Date.now() + this.leaseMs;
    const record: ClaimRecord = {
      host: hostname(),
      pid: process.pid,
      nonce: randomBytes(8).toString('hex'),
      expiresAt: new Date(expiresAt).toISOString(),
    };
    return { body: JSON.stringify(record), expiresAt };
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
    let held: { etag?: string; record: ClaimRecord };
    try {
      const got = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      held = {
        etag: got.ETag,
        record: JSON.parse(await got.Body!.transformToString()) as ClaimRecord,
      };
    } catch {
      return null; // released just now (the next run takes it), or unreadable: left alone
    }
    if (!(Date.parse(held.record.expiresAt) < Date.now()) || !held.etag) return null;
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
      if (conflict(e) || notFound(e)) return null;
      throw s3Error(`cannot write the claim s3://${this.bucket}/${key}`, e);
    }
  }
}
