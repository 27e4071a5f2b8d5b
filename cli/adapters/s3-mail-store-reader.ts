/**
 * The function's S3 mail store as `dequeue deliver` reads it (the layout is
 * lambda/adapters/s3-mail-sink.ts's):
 *
 *   <prefix><target>/<yyyy>/<mm>/<dd>/<id>.eml, .json    undelivered: the message and its envelope
 *   <prefix><target>/<yyyy>/<mm>/<dd>/<id>.claim         claimed by a running deliver (a lease)
 *   <prefix><target>/<yyyy>/<mm>/<dd>/<id>.progress      final answers of earlier runs, DSNs sent
 *   <prefix>failed/<target>/<yyyy>/<mm>/<dd>/<id>.eml, .json, .replies.json
 *
 * Delivered messages are deleted (.eml first: its going takes the message out of the undelivered
 * set); the bucket is versioned, so the old version stays until the lifecycle rule expires it.
 *
 * The claim is an S3 conditional write: PutObject of `<id>.claim` with `If-None-Match: *`
 * succeeds for exactly one of two runs (S3 answers the other 412). The claim holds a lease
 * (CLAIM_LEASE_MS, by S3's clock: cli/adapters/s3-claim-lease.ts): a claim whose lease ran out
 * (a run that crashed or was killed) is taken over with `If-Match: <its ETag>`, which again only
 * one run can win; a 412 that meets our own nonce is our write, retried by the SDK. While a message is being
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
  HeadObjectCommand,
  ListObjectsV2Command,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { TARGET_NAME } from '../../lambda/core/config-names';
import { ConfigError, DequeueError } from '../../lambda/core/errors';
import { checkStoredEnvelope, unusableEnvelope } from '../../lambda/core/odmr/envelope-check';
import type { EnvelopeRecord } from '../../lambda/core/odmr/envelope-record';
import type { ClaimedMail, MailStore, StoredRef } from '../delivery/mail-store';
import { NO_PROGRESS, parseProgress } from '../delivery/progress-record';
import { answerDate, S3ClaimLeases } from './s3-claim-lease';
import { type ClaimingStore, S3Claim, type S3Ref } from './s3-claimed-message';
import { notFound, S3MailObjects, s3Error, type StoredObject } from './s3-mail-objects';

/** How long a claim holds before another run may take the message over; renewed every quarter. */
export const CLAIM_LEASE_MS = 60 * 60_000;
/**
 * How old a message without its envelope (or the reverse) must be before it counts as a crash
 * orphan. The writer that might still complete it is a Lambda invocation (at most 15 minutes).
 */
export const ORPHAN_GRACE_MS = 60 * 60_000;

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

const ago = (ms: number) =>
  ms >= 2 * 3600_000
    ? `${Math.floor(ms / 3600_000)} hours`
    : ms >= 120_000
      ? `${Math.floor(ms / 60_000)} minutes`
      : `${Math.floor(ms / 1000)} s`;

export class S3MailStoreReader implements MailStore, ClaimingStore {
  readonly name: string;
  readonly leaseMs: number;
  private readonly graceMs: number;
  private readonly notice: (text: string) => void;
  /** Claims taken and not yet marked or released: given back by close(). */
  readonly held = new Set<S3Claim>();
  /** The objects: read, written, copied, deleted. */
  readonly objects: S3MailObjects;
  /** The claims: taken, taken over, renewed. */
  readonly leases: S3ClaimLeases;
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
    this.objects = new S3MailObjects(client, bucket, options);
    this.leases = new S3ClaimLeases(client, bucket, this.leaseMs);
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

  /**
   * The targets with anything under `<prefix><target>/` or `<prefix>failed/<target>/` now. Not
   * lasting: a target whose mail was all delivered has nothing left there (deleted; only older
   * versions remain, which the reader's policy does not list).
   */
  async storedTargets(): Promise<{ names: string[]; lasting: false }> {
    const names = new Set<string>();
    for (const scope of [this.prefix, `${this.prefix}failed/`]) {
      let token: string | undefined;
      do {
        const page = await this.client
          .send(
            new ListObjectsV2Command({
              Bucket: this.bucket,
              Prefix: scope,
              Delimiter: '/',
              ContinuationToken: token,
            }),
          )
          .catch((e: unknown) => Promise.reject(s3Error(`cannot list ${this.name}`, e)));
        for (const p of page.CommonPrefixes ?? []) {
          const name = p.Prefix!.slice(scope.length, -1);
          if (TARGET_NAME.test(name) && !(scope === this.prefix && name === 'failed'))
            names.add(name);
        }
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
    }
    return { names: [...names].sort(), lasting: false };
  }

  async list(targets?: readonly string[]): Promise<StoredRef[]> {
    const listed = new Map<string, Listed>();
    // S3's clock at the listing (the Date of its answer): an orphan's age is measured by the
    // store that dated it (LastModified), never by a local clock that may be off.
    let storeNow: number | undefined;
    for (const scope of targets ? targets.map((t) => `${this.prefix}${t}/`) : [this.prefix]) {
      let token: string | undefined;
      do {
        const command = new ListObjectsV2Command({
          Bucket: this.bucket,
          Prefix: scope,
          ContinuationToken: token,
        });
        const answeredAt = answerDate(command);
        const page = await this.client
          .send(command)
          .catch((e: unknown) => Promise.reject(s3Error(`cannot list ${this.name}`, e)));
        storeNow ??= answeredAt();
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
        await this.removeOrphan(entry, storeNow ?? Date.now()).catch((e: unknown) =>
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
  private async removeOrphan(entry: Listed, now: number): Promise<void> {
    const { seen, base } = entry;
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
    const claim = await this.leases.take(`${base}.claim`);
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
      for (const kind of removed)
        if (kind !== 'claim') await this.objects.delete(`${base}.${kind}`);
      this.notice(
        `removed ${removed.map(url).join(', ')}: ${why}; the versioned bucket keeps the removed version until its lifecycle rule expires it`,
      );
    } finally {
      await this.objects.delete(`${base}.claim`).catch(() => undefined);
    }
  }

  async claim(ref: StoredRef): Promise<ClaimedMail | null> {
    const r = ref as S3Ref;
    const claimKey = `${r.base}.claim`;
    const held = await this.leases.take(claimKey);
    if (!held) return null;
    const release = () => this.objects.delete(claimKey).catch(() => undefined);
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
      // Checked on read (envelope-check.ts): not JSON, or not a sendable envelope, and the
      // message goes to failed/ with the reason; only a read that fails leaves it in place.
      const text = await this.objects.text(`${r.base}.json`);
      let envelope: EnvelopeRecord = unusableEnvelope(r.id, r.target);
      let problem: string | undefined;
      try {
        const checked = checkStoredEnvelope(JSON.parse(text));
        if (checked.ok) envelope = checked.envelope;
        else problem = checked.problem;
      } catch {
        problem = 'the envelope is not JSON';
      }
      if (problem) problem = `s3://${this.bucket}/${r.base}.json: ${problem}`;
      // A progress record that is missing or unreadable means: every recipient still waits.
      const progress = await this.objects
        .text(`${r.base}.progress`)
        .then(parseProgress, () => NO_PROGRESS)
        .catch(() => NO_PROGRESS);
      if (this.closed) {
        // Taken ahead by a run that has ended meanwhile: given back at once.
        await release();
        return null;
      }
      return new S3Claim(this, r, envelope, progress, held, source, problem);
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

  say(text: string): void {
    this.notice(text);
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
