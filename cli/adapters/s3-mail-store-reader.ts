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
 * with `If-Match: <its ETag>`, which again only one run can win. While a message is being
 * delivered (or set aside), its run renews the lease every quarter lease with `If-Match` on the
 * claim's current ETag, so a slow message keeps its claim however long it takes. A renewal that
 * S3 refuses (412: the claim is not ours any more) means another run took the message over after
 * our lease ran out (renewals failing for most of an hour): this run then stops sending the text
 * if it still is, marks nothing, leaves the claim alone, and says so; the message may arrive twice.
 *
 * Crash orphans. The function writes the envelope's PUT beside the message's last request, and
 * answers 250 only once both are stored: a function stopped between them leaves an `.eml`
 * without its `.json` (or the reverse) that was never acknowledged, so the provider still has the
 * message and delivers it again. A deliver run stopped between a mark's deletes (or a delete
 * that failed) leaves an envelope, a progress record or a claim whose message is already gone.
 * `list()` removes each such leftover once it is older than ORPHAN_GRACE_MS (the function's own
 * invocation that wrote it has long ended: Lambda stops one after 15 minutes, a bound that holds
 * too if S3 dates a multipart object from the start of its upload), under a claim of
 * its own so that two runs do not both do it, with one line per object for the operator; the
 * versioned bucket keeps the removed version. A younger one is a message still being committed
 * right now: it is left alone and not reported (it is not a message yet; the mail directory
 * never shows one, since there the `.eml` appears last).
 *
 * Moving a message to failed/ is a CopyObject, which S3 refuses above 5 GB; a larger message
 * (`mail.maxMessageBytes` allows 10 GiB) is copied in parts (UploadPartCopy), server-side.
 */
import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCopyCommand,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Readable } from 'node:stream';
import { TARGET_NAME } from '../../lambda/core/config';
import { ConfigError, DequeueError } from '../../lambda/core/errors';
import type { EnvelopeRecord } from '../../lambda/core/odmr/envelope-record';
import type { ClaimedMail, MailStore, RecipientAnswer, StoredRef } from '../delivery/mail-store';

/** How long a claim holds before another run may take the message over; renewed every quarter. */
export const CLAIM_LEASE_MS = 60 * 60_000;
/**
 * How old a message without its envelope (or the reverse) must be before it counts as a crash
 * orphan. The writer that might still complete it is a Lambda invocation (at most 15 minutes).
 */
export const ORPHAN_GRACE_MS = 60 * 60_000;
/**
 * Above this a message goes to failed/ as a multipart copy. S3's CopyObject limit is "5 GB":
 * the smaller reading (10^9 bytes) keeps a single copy below it whichever S3 means.
 */
export const MULTIPART_COPY_ABOVE_BYTES = 5 * 1000 ** 3;
/** Each UploadPartCopy's range (S3: 5 MiB to 5 GiB, at most 10,000 parts); a few at once. */
const COPY_PART_BYTES = 512 * 1024 * 1024;
const COPY_PARTS_AT_ONCE = 4;
const MAX_PARTS = 10_000;

export interface S3MailStoreReaderOptions {
  /** Called once the run is over (the client the reader made is destroyed). */
  readonly onClose?: () => void;
  /** One line for the operator (deliver writes it on stderr): an orphan removed, a claim lost. */
  readonly notice?: (text: string) => void;
  /** `--dry-run`: orphans are named ("would remove"), nothing is changed. */
  readonly dryRun?: boolean;
  /** Default CLAIM_LEASE_MS (tests shorten it). */
  readonly leaseMs?: number;
  /** Default ORPHAN_GRACE_MS. */
  readonly orphanGraceMs?: number;
  /** Default MULTIPART_COPY_ABOVE_BYTES (tests lower it to prove the multipart path on moto). */
  readonly multipartCopyAboveBytes?: number;
  /** Default 512 MiB. */
  readonly copyPartBytes?: number;
}

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

/** The message's object as claimed: what a copy to failed/ needs. */
interface StoredObject {
  readonly size: number;
  readonly etag?: string;
  readonly contentType?: string;
  readonly metadata?: Record<string, string>;
}

/** A claim as written: its ETag (for If-Match) and when its lease runs out. */
interface Held {
  readonly etag: string;
  readonly expiresAt: number;
  /** Taken over from an expired lease rather than created. */
  readonly tookOver?: boolean;
}

type Kind = 'eml' | 'json' | 'claim' | 'progress';
/** Everything listed under one `<id>`: each kind's LastModified. */
interface Listed extends S3Ref {
  readonly seen: Partial<Record<Kind, number>>;
}

/** The reader as the CLI opens it: the SDK's usual chain (AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL). */
export function openS3MailStoreReader(
  bucket: string,
  prefix: string,
  options: S3MailStoreReaderOptions = {},
  config: S3ClientConfig = {},
): MailStore {
  // An emulator (AWS_ENDPOINT_URL) serves buckets by path, not by host name.
  const client = new S3Client({ forcePathStyle: Boolean(process.env.AWS_ENDPOINT_URL), ...config });
  return new S3MailStoreReader(client, bucket, prefix, {
    ...options,
    onClose: () => {
      options.onClose?.();
      client.destroy();
    },
  });
}

function s3Error(what: string, e: unknown): DequeueError {
  const name = (e as Error).name;
  if (
    name === 'NoSuchBucket' ||
    name === 'AccessDenied' ||
    name === 'InvalidAccessKeyId' ||
    name === 'CredentialsProviderError'
  ) {
    return new ConfigError('--bucket', '', `${what}: ${name}: ${(e as Error).message}`, {
      cause: e,
    });
  }
  return new DequeueError('temporary', `${what}: ${name}: ${(e as Error).message}`, { cause: e });
}

const status = (e: unknown) =>
  (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
const notFound = (e: unknown) =>
  status(e) === 404 || (e as Error).name === 'NoSuchKey' || (e as Error).name === 'NotFound';
const conflict = (e: unknown) => status(e) === 412 || status(e) === 409;
const ago = (ms: number) =>
  ms >= 2 * 3600_000
    ? `${Math.floor(ms / 3600_000)} hours`
    : ms >= 120_000
      ? `${Math.floor(ms / 60_000)} minutes`
      : `${Math.floor(ms / 1000)} s`;

export class S3MailStoreReader implements MailStore {
  readonly name: string;
  readonly leaseMs: number;
  private readonly graceMs: number;
  private readonly notice: (text: string) => void;
  /** Claims taken and not yet marked or released: given back by close(). */
  readonly held = new Set<S3Claim>();
  private closed = false;

  constructor(
    private readonly client: S3Client,
    private readonly bucket: string,
    private readonly prefix: string,
    private readonly options: S3MailStoreReaderOptions = {},
  ) {
    this.name = `s3://${bucket}/${prefix}`;
    this.leaseMs = options.leaseMs ?? CLAIM_LEASE_MS;
    this.graceMs = options.orphanGraceMs ?? ORPHAN_GRACE_MS;
    this.notice = options.notice ?? (() => undefined);
  }

  async check(): Promise<void> {
    try {
      await this.client.send(
        new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.prefix, MaxKeys: 1 }),
      );
    } catch (e) {
      const error = s3Error(`cannot list ${this.name}`, e);
      throw error.kind === 'config'
        ? error
        : new ConfigError('--bucket', '', error.message, { cause: e });
    }
  }

  async list(targets?: readonly string[]): Promise<StoredRef[]> {
    const listed = new Map<string, Listed>();
    for (const scope of targets ? targets.map((t) => `${this.prefix}${t}/`) : [this.prefix]) {
      let token: string | undefined;
      do {
        const page = await this.client
          .send(
            new ListObjectsV2Command({
              Bucket: this.bucket,
              Prefix: scope,
              ContinuationToken: token,
            }),
          )
          .catch((e: unknown) => Promise.reject(s3Error(`cannot list ${this.name}`, e)));
        for (const item of page.Contents ?? []) {
          const rel = item.Key!.slice(this.prefix.length);
          // <target>/<yyyy>/<mm>/<dd>/<id>.<kind>; failed/<target>/... has one segment more.
          const m =
            /^([^/]+)\/(\d{4})\/(\d{2})\/(\d{2})\/([^/.]+)\.(eml|json|claim|progress)$/.exec(rel);
          if (!m || !TARGET_NAME.test(m[1]!)) continue;
          const base = item.Key!.slice(0, -(m[6]!.length + 1));
          let entry = listed.get(base);
          if (!entry)
            listed.set(
              base,
              (entry = {
                id: m[5]!,
                target: m[1]!,
                base,
                rel: rel.slice(0, -(m[6]!.length + 1)),
                seen: {},
              }),
            );
          entry.seen[m[6] as Kind] = item.LastModified?.getTime() ?? Date.now();
        }
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
    }
    const refs: S3Ref[] = [];
    for (const entry of listed.values()) {
      const { seen } = entry;
      if (seen.eml !== undefined && seen.json !== undefined)
        refs.push({ id: entry.id, target: entry.target, base: entry.base, rel: entry.rel });
      else {
        // A leftover that cannot be removed now stops nothing: the next run tries again.
        await this.removeOrphan(entry).catch((e: unknown) =>
          this.notice(
            `could not remove what a crash left under s3://${this.bucket}/${entry.base}: ${(e as Error).message}; left where it is`,
          ),
        );
      }
    }
    return refs.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : a.target < b.target ? -1 : 1));
  }

  /**
   * What a crash left under one id without its partner (the header): removed once older than the
   * grace period, under a claim of our own, with one line per object; a younger one is left alone.
   */
  private async removeOrphan(entry: Listed): Promise<void> {
    const { seen, base } = entry;
    const now = Date.now();
    const old = (kind: Kind) => seen[kind] !== undefined && now - seen[kind]! >= this.graceMs;
    const lone: Kind | null =
      seen.eml !== undefined ? 'eml' : seen.json !== undefined ? 'json' : null;
    if (lone && !old(lone)) return; // still being stored, perhaps: not a message yet
    // Leftovers of a deliver run: a progress record, a claim whose lease must have run out.
    const leftovers = (['progress', 'claim'] as const).filter(
      (k) => old(k) && (k !== 'claim' || now - seen.claim! >= this.leaseMs),
    );
    if (!lone && !leftovers.length) return;
    const url = (kind: Kind) => `s3://${this.bucket}/${base}.${kind}`;
    const why =
      lone === 'eml'
        ? `a message without its envelope (${base.slice(base.lastIndexOf('/') + 1)}.json), stored ${ago(now - seen.eml!)} ago: the function stopped between storing the two, before it answered 250, so the provider still has the message and delivers it again`
        : lone === 'json'
          ? `an envelope without its message (.eml), written ${ago(now - seen.json!)} ago: either the function stopped before it answered 250 (the provider still has the message and delivers it again) or a deliver run stopped after the message was delivered or set aside`
          : `left by a deliver run that stopped after the message was delivered or set aside`;
    const kinds = [...(lone ? [lone] : []), ...leftovers];
    if (this.options.dryRun) {
      this.notice(`would remove ${kinds.map(url).join(', ')}: ${why} (a dry run changes nothing)`);
      return;
    }
    // Under a claim, so that of two runs one removes it and says so; the other leaves it alone.
    const claim = await this.takeClaim(`${base}.claim`);
    if (!claim) return;
    try {
      const there = (kind: Kind) =>
        this.client
          .send(new HeadObjectCommand({ Bucket: this.bucket, Key: `${base}.${kind}` }))
          .then(
            () => true,
            (e: unknown) =>
              notFound(e) ? false : Promise.reject(s3Error(`cannot read ${url(kind)}`, e)),
          );
      // Its partner appeared after all (a clock far off): a message, for the next run.
      if (lone && (await there(lone === 'eml' ? 'json' : 'eml'))) return;
      // What is still there once we hold the claim (another run may have removed it just before);
      // a stale claim counts when it was ours to take over, not created afresh.
      const removed: Kind[] = [];
      for (const kind of kinds)
        if (kind === 'claim' ? claim.tookOver : await there(kind)) removed.push(kind);
      if (!removed.length || (lone && !removed.includes(lone))) return;
      for (const kind of removed) if (kind !== 'claim') await this.delete(`${base}.${kind}`);
      this.notice(
        `removed ${removed.map(url).join(', ')}: ${why}; the versioned bucket keeps the removed version until its lifecycle rule expires it`,
      );
    } finally {
      await this.delete(`${base}.claim`).catch(() => undefined);
    }
  }

  async claim(ref: StoredRef): Promise<ClaimedMail | null> {
    const r = ref as S3Ref;
    const claimKey = `${r.base}.claim`;
    const held = await this.takeClaim(claimKey);
    if (!held) return null;
    const release = () => this.delete(claimKey).catch(() => undefined);
    try {
      let source: StoredObject;
      try {
        const head = await this.client.send(
          new HeadObjectCommand({ Bucket: this.bucket, Key: `${r.base}.eml` }),
        );
        source = {
          size: head.ContentLength ?? 0,
          etag: head.ETag,
          contentType: head.ContentType,
          metadata: head.Metadata,
        };
      } catch (e) {
        if (!notFound(e)) throw s3Error(`cannot read s3://${this.bucket}/${r.base}.eml`, e);
        await release();
        return null; // delivered by another run meanwhile
      }
      const envelope = JSON.parse(await this.text(`${r.base}.json`)) as EnvelopeRecord;
      if (typeof envelope.mailFrom !== 'string' || !Array.isArray(envelope.rcptTo)) {
        throw new DequeueError(
          'temporary',
          `message ${r.id}: s3://${this.bucket}/${r.base}.json is not an envelope record; it is left where it is`,
        );
      }
      // A progress record that is missing or unreadable means: every recipient still waits.
      const answered = await this.text(`${r.base}.progress`)
        .then(
          (text) => (JSON.parse(text) as { answers: RecipientAnswer[] }).answers,
          () => [] as RecipientAnswer[],
        )
        .catch(() => [] as RecipientAnswer[]);
      if (this.closed) {
        // Taken ahead by a run that has ended meanwhile: given back at once.
        await release();
        return null;
      }
      return new S3Claim(this, r, envelope, Array.isArray(answered) ? answered : [], held, source);
    } catch (e) {
      await release();
      throw e instanceof DequeueError
        ? e
        : new DequeueError(
            'temporary',
            `message ${r.id}: ${(e as Error).message}; it is left where it is`,
            { cause: e },
          );
    }
  }

  private claimRecord(): { body: string; expiresAt: number } {
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
  private async takeClaim(key: string): Promise<Held | null> {
    const fresh = this.claimRecord();
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
    const taken = await this.renewClaim(key, held.etag);
    return taken && { ...taken, tookOver: true };
  }

  /**
   * Write a fresh lease over the claim whose ETag is `etag` (If-Match): the claim, or null when
   * S3 refuses (412: another run's now; 404: gone). Other failures throw.
   */
  async renewClaim(key: string, etag: string): Promise<Held | null> {
    const fresh = this.claimRecord();
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

  say(text: string): void {
    this.notice(text);
  }

  url(key: string): string {
    return `s3://${this.bucket}/${key}`;
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
      await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: key,
          Body: body,
          ContentType: 'application/json',
        }),
      );
    } catch (e) {
      throw s3Error(`cannot write s3://${this.bucket}/${key}`, e);
    }
  }

  private copySource(key: string): string {
    return `${this.bucket}/${key.split('/').map(encodeURIComponent).join('/')}`;
  }

  async copy(from: string, to: string): Promise<void> {
    try {
      await this.client.send(
        new CopyObjectCommand({ Bucket: this.bucket, Key: to, CopySource: this.copySource(from) }),
      );
    } catch (e) {
      throw s3Error(`cannot copy s3://${this.bucket}/${from} to ${to}`, e);
    }
  }

  /**
   * A message to failed/: one CopyObject, or above the single-copy limit a multipart upload of
   * UploadPartCopy ranges (server-side; nothing passes through this machine). Every part is
   * copied only if the source is still the version we claimed (If-Match its ETag). A copy that
   * fails half-way leaves an incomplete upload, which the bucket's abort-incomplete-uploads
   * lifecycle rule removes after a day (the reader's policy has no AbortMultipartUpload).
   */
  async copyMessage(from: string, to: string, source: StoredObject): Promise<void> {
    const above = this.options.multipartCopyAboveBytes ?? MULTIPART_COPY_ABOVE_BYTES;
    if (source.size <= above) return this.copy(from, to);
    const what = `cannot copy s3://${this.bucket}/${from} (${source.size} bytes) to ${to} in parts`;
    const partBytes = Math.max(
      this.options.copyPartBytes ?? COPY_PART_BYTES,
      Math.ceil(source.size / MAX_PARTS),
    );
    try {
      const { UploadId } = await this.client.send(
        new CreateMultipartUploadCommand({
          Bucket: this.bucket,
          Key: to,
          ContentType: source.contentType ?? 'message/rfc822',
          Metadata: source.metadata,
        }),
      );
      const count = Math.ceil(source.size / partBytes);
      const etags: string[] = new Array<string>(count);
      let next = 0;
      const worker = async () => {
        while (next < count) {
          const i = next++;
          const first = i * partBytes;
          const last = Math.min(source.size, first + partBytes) - 1;
          const part = await this.client.send(
            new UploadPartCopyCommand({
              Bucket: this.bucket,
              Key: to,
              UploadId,
              PartNumber: i + 1,
              CopySource: this.copySource(from),
              CopySourceRange: `bytes=${first}-${last}`,
              CopySourceIfMatch: source.etag,
            }),
          );
          etags[i] = part.CopyPartResult!.ETag!;
        }
      };
      // Every worker settled before the result counts: nothing left running after a failure.
      const settled = await Promise.allSettled(
        Array.from({ length: Math.min(COPY_PARTS_AT_ONCE, count) }, worker),
      );
      const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
      if (failed) throw failed.reason;
      await this.client.send(
        new CompleteMultipartUploadCommand({
          Bucket: this.bucket,
          Key: to,
          UploadId,
          MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) },
        }),
      );
    } catch (e) {
      throw s3Error(what, e);
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

  /** Claims taken ahead and never used are given back; no renewal outlives the run. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.held].map((claim) => claim.release()));
    this.options.onClose?.();
  }
}

/**
 * A claimed message. Its lease is renewed every quarter lease until it is marked or released;
 * once a renewal is refused (another run took it over), nothing is marked and the claim is left
 * to its new holder.
 */
class S3Claim implements ClaimedMail {
  private readonly claimKey: string;
  private timer: NodeJS.Timeout | null;
  private renewing: Promise<void> | null = null;
  /** Set when another run holds the claim now: the reason, said once. */
  private lost: DequeueError | null = null;
  /** The claim may be another run's now (our lease ran out unconfirmed): not ours to delete. */
  private keep = false;
  private done = false;

  constructor(
    private readonly store: S3MailStoreReader,
    readonly ref: S3Ref,
    readonly envelope: EnvelopeRecord,
    readonly answered: readonly RecipientAnswer[],
    private held: Held,
    private readonly source: StoredObject,
  ) {
    this.claimKey = `${ref.base}.claim`;
    store.held.add(this);
    this.timer = setInterval(() => void this.renew(), Math.max(1, Math.floor(store.leaseMs / 4)));
    this.timer.unref();
  }

  /** One renewal at a time; a failure other than a refusal is tried again at the next tick. */
  private renew(): Promise<void> {
    if (this.renewing || this.lost || this.done) return this.renewing ?? Promise.resolve();
    this.renewing = this.store
      .renewClaim(this.claimKey, this.held.etag)
      .then(
        (held) => {
          if (held) this.held = held;
          else this.loseClaim();
        },
        () => undefined, // S3 unreachable for now: the lease still runs; the next tick tries again
      )
      .finally(() => {
        this.renewing = null;
      });
    return this.renewing;
  }

  private loseClaim(): void {
    if (this.lost) return;
    this.stopRenewing();
    const { id, target } = this.ref;
    this.lost = new DequeueError(
      'temporary',
      `its claim ${this.store.url(this.claimKey)} was taken over by another run after this run's lease ran out; this run marks nothing and leaves the message to that run (the server may get it twice)`,
    );
    this.store.say(`message ${id} (${target}): ${this.lost.message}`);
  }

  private stopRenewing(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /**
   * Before a mark: still ours? A renewal in flight is awaited; when the lease is more than half
   * gone (renewals failing), one more renewal decides. Throws when the claim is not ours.
   */
  private async confirm(): Promise<void> {
    await this.renewing;
    if (!this.lost && this.held.expiresAt - Date.now() < this.store.leaseMs / 2) {
      const held = await this.store
        .renewClaim(this.claimKey, this.held.etag)
        .catch((e: unknown) => {
          if (this.held.expiresAt > Date.now()) return this.held; // still within our lease
          // Unconfirmed past our lease: not marked, and the claim left (it may be another run's).
          this.keep = true;
          throw e;
        });
      if (held) this.held = held;
      else this.loseClaim();
    }
    if (this.lost) throw this.lost;
  }

  /** The end of the claim: no renewal left; the claim deleted unless another run holds it now. */
  private async finish(): Promise<void> {
    if (this.done) return;
    this.done = true;
    this.stopRenewing();
    await this.renewing;
    this.store.held.delete(this);
    if (!this.lost && !this.keep) await this.store.delete(this.claimKey).catch(() => undefined);
  }

  async *open(): AsyncIterable<Buffer> {
    if (this.lost) throw this.lost;
    const body = await this.store.stream(`${this.ref.base}.eml`);
    // Stopping mid-text when the claim is lost makes the client cut the connection (RFC 5321
    // 4.1.1.4: the server must not deliver it): the run that has it now delivers it alone.
    for await (const chunk of body) {
      if (this.lost) throw this.lost;
      yield Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
    }
    if (this.lost) throw this.lost;
  }

  /** Out of the undelivered set: the .eml first (from then on it is out), then what goes with it. */
  private async takeOut(): Promise<void> {
    await this.store.delete(`${this.ref.base}.eml`);
    await this.store.delete(`${this.ref.base}.json`).catch(() => undefined);
    if (this.answered.length)
      await this.store.delete(`${this.ref.base}.progress`).catch(() => undefined);
  }

  async delivered(): Promise<void> {
    try {
      await this.confirm();
      await this.takeOut();
    } finally {
      await this.finish();
    }
  }

  async failed(answers: readonly RecipientAnswer[]): Promise<void> {
    const to = this.store.failedKey(this.ref);
    try {
      await this.confirm();
      await this.store.copy(`${this.ref.base}.json`, `${to}.json`);
      await this.store.put(
        `${to}.replies.json`,
        `${JSON.stringify({ id: this.ref.id, at: new Date().toISOString(), recipients: answers }, null, 2)}\n`,
      );
      await this.store.copyMessage(`${this.ref.base}.eml`, `${to}.eml`, this.source);
      // A large copy takes a while: the message is taken out only if it is still ours.
      await this.confirm();
      await this.takeOut();
    } finally {
      await this.finish();
    }
  }

  async deferred(answers: readonly RecipientAnswer[]): Promise<void> {
    try {
      await this.confirm();
      if (answers.length)
        await this.store.put(`${this.ref.base}.progress`, JSON.stringify({ answers }));
    } finally {
      await this.finish();
    }
  }

  release(): Promise<void> {
    return this.finish();
  }
}
