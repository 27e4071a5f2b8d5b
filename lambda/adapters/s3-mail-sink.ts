/**
 * The Lambda's mail store: each message an S3 object, its envelope a JSON object beside it.
 *
 *   <prefix><target>/<yyyy>/<mm>/<dd>/<id>.eml    message/rfc822, our trace header first
 *   <prefix><target>/<yyyy>/<mm>/<dd>/<id>.json   the envelope (lambda/core/odmr/envelope-record.ts)
 *   <prefix>relayed/<target>/...                   the same for a message the relay took: a
 *                                                  record, outside what `deliver` sends
 *
 * The message streams into the object as it arrives (lib-storage `Upload`: one PutObject when it
 * is small, a multipart upload of `partSize` parts otherwise), so memory holds at most
 * `queueSize + 1` parts, never the message. Nothing is visible before the upload completes (S3
 * shows neither a single PUT in progress nor the parts of an incomplete multipart upload), and an
 * aborted message is cleaned up: its multipart upload aborted, or its object deleted if it had
 * completed meanwhile. After the final dot the envelope's PUT and the message's last request(s)
 * go at once (bench/s3-commit-requests.ts counts them), and the message is reported stored once
 * both are: for the length of one request the `.eml` may be listed before its `.json`; a reader
 * that comes in that moment (cli/adapters/s3-mail-store-reader.ts) leaves it alone, unreported
 * (not a message yet). One left so by a crash between the two, never acknowledged, is removed by
 * that reader once it is an hour old (the provider still has the message).
 *
 * The client is taken in (Powertools style): tests give one pointed at moto_server.
 */
import { DeleteObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { PassThrough } from 'node:stream';
import { envelopeJson } from '../core/odmr/envelope-record';
import { DequeueError } from '../core/errors';
import type { MemoryBudget } from '../core/memory-budget';
import type { MailEnvelope, MailSink, MessageDraft, StoredMessage } from '../core/ports';
import { DEFAULT_MAIL_PREFIX } from '../default-prefixes';

export interface S3MailSinkOptions {
  readonly client: S3Client;
  readonly bucket: string;
  /** Key prefix; default `mail/` (DEQUEUE_MAIL_PREFIX). */
  readonly prefix?: string;
  /** Multipart part size; default 5 MiB, S3's minimum (memory over speed: mail is rarely large). */
  readonly partSize?: number;
  /** Parts uploaded at once; default 2. Memory is about (queueSize + 1) x partSize. */
  readonly queueSize?: number;
  /**
   * The run's in-flight mail memory (core/memory-budget.ts): each message takes its upload
   * buffers from it before DATA is answered with 354 (all queueSize parts when they fit, else one
   * part at a time), and gives them back when its upload is over.
   */
  readonly memory?: MemoryBudget;
}

const DEFAULT_PART_SIZE = 5 * 1024 * 1024;
const DEFAULT_QUEUE_SIZE = 2;
/** Deletes of an unacknowledged message's objects: tries, and the pause before the next (times the try). */
const DELETE_ATTEMPTS = 3;
const DELETE_RETRY_MS = 200;
/** What the body stream holds before a write waits for the uploader. */
const BODY_HIGH_WATER = 1024 * 1024;

export function mailObjectKey(prefix: string, envelope: MailEnvelope): string {
  const day = envelope.receivedAt.slice(0, 10).replace(/-/g, '/');
  // A copy of mail the relay took is a record outside the undelivered set (`deliver` lists
  // <prefix><target>/<yyyy>/<mm>/<dd>/ only): it is never delivered a second time.
  const relayed = envelope.relayedTo ? 'relayed/' : '';
  return `${prefix}${relayed}${envelope.target}/${day}/${envelope.id}`;
}

export function createS3MailSink(options: S3MailSinkOptions): MailSink {
  const prefix = options.prefix ?? DEFAULT_MAIL_PREFIX;
  const partSize = options.partSize ?? DEFAULT_PART_SIZE;
  const queueSize = options.queueSize ?? DEFAULT_QUEUE_SIZE;
  return {
    async begin(envelope: MailEnvelope): Promise<MessageDraft> {
      const key = mailObjectKey(prefix, envelope);
      const memory = options.memory;
      if (!memory) return new S3Draft(options, key, envelope, queueSize, () => undefined);
      // A part per upload in flight, the one being filled, and the body stream's buffer.
      const need = (parts: number) => (parts + 1) * partSize + BODY_HIGH_WATER;
      let parts = queueSize;
      let taken = memory.tryTake(need(parts)) ? need(parts) : 0;
      if (!taken) {
        parts = 1;
        taken = await memory.take(need(parts));
      }
      let given = false;
      return new S3Draft(options, key, envelope, parts, () => {
        if (!given) memory.give(taken);
        given = true;
      });
    },
  };
}

function s3Error(what: string, e: unknown): DequeueError {
  // Temporary whatever S3 said: the provider keeps the message; the cause names the problem.
  return new DequeueError('temporary', `${what}: ${(e as Error).name}: ${(e as Error).message}`, {
    cause: e,
  });
}

class S3Draft implements MessageDraft {
  readonly withdrawable = true;
  private readonly body = new PassThrough({ highWaterMark: BODY_HIGH_WATER });
  private readonly upload: Upload;
  private readonly uploaded: Promise<unknown>;
  private failure: DequeueError | null = null;
  private bytes = 0;
  private committing: Promise<StoredMessage> | null = null;
  private aborted = false;
  private envelopeWritten = false;

  constructor(
    private readonly options: S3MailSinkOptions,
    private readonly key: string,
    private readonly envelope: MailEnvelope,
    queueSize: number,
    /** Gives the draft's memory back to the run's budget; called once the upload is over. */
    release: () => void,
  ) {
    this.upload = new Upload({
      client: options.client,
      params: {
        Bucket: options.bucket,
        Key: `${key}.eml`,
        Body: this.body,
        ContentType: 'message/rfc822',
        Metadata: { 'dequeue-id': envelope.id, 'dequeue-target': envelope.target },
      },
      partSize: options.partSize ?? DEFAULT_PART_SIZE,
      queueSize,
      leavePartsOnError: false,
    });
    // The uploader reads the body; an abort's error reaches it that way, not as an event to crash on.
    this.body.on('error', () => undefined);
    this.uploaded = this.upload.done();
    // Settled either way, the upload holds no part any more.
    this.uploaded.then(release, release);
    this.uploaded.catch((e: unknown) => {
      this.failure ??= s3Error(`cannot upload s3://${options.bucket}/${key}.eml`, e);
      // Nothing will read the body any more: closing it wakes a write waiting for 'drain'.
      this.body.destroy();
    });
  }

  async write(chunks: readonly Buffer[]): Promise<void> {
    if (this.failure) throw this.failure;
    let flowing = true;
    for (const chunk of chunks) {
      this.bytes += chunk.length;
      flowing = this.body.write(chunk) && flowing;
    }
    if (flowing) return;
    // Wait for the uploader to take more, or for the upload to fail (then nothing drains).
    if (this.body.destroyed)
      throw (
        this.failure ?? new DequeueError('temporary', `message ${this.envelope.id} was aborted`)
      );
    await new Promise<void>((resolve) => {
      const done = () => {
        this.body.off('drain', done);
        this.body.off('close', done);
        resolve();
      };
      this.body.once('drain', done);
      this.body.once('close', done);
    });
    if (this.failure) throw this.failure;
    if (this.body.destroyed)
      throw new DequeueError('temporary', `message ${this.envelope.id} was aborted`);
  }

  commit(): Promise<StoredMessage> {
    this.committing ??= this.commitSteps();
    return this.committing;
  }

  async abort(): Promise<void> {
    this.aborted = true;
    // Ending the body with an error makes the uploader abort its multipart upload and reject:
    // once `uploaded` has settled, no part is left behind.
    if (!this.body.writableEnded) this.body.destroy(new Error('message aborted'));
    await this.committing?.catch(() => undefined);
    const completed = await this.uploaded.then(
      () => true,
      () => false,
    );
    // A message that completed anyway is withdrawn: without our 250 the provider still has it.
    const left = await this.remove([
      ...(completed ? [`${this.key}.eml`] : []),
      ...(this.envelopeWritten ? [`${this.key}.json`] : []),
    ]);
    if (left.length) {
      throw new DequeueError(
        'temporary',
        `message ${this.envelope.id} was not acknowledged but could not be withdrawn: ${left.join(', ')}; delete it, or the provider's next delivery makes a duplicate`,
      );
    }
  }

  /**
   * Delete each key, each tried DELETE_ATTEMPTS times (the SDK's own retries come on top for
   * throttling and 5xx); what is still there afterwards is returned, with why, to be reported.
   */
  private async remove(keys: readonly string[]): Promise<string[]> {
    const left: string[] = [];
    for (const Key of keys) {
      let failure: Error | null = null;
      for (let attempt = 0; attempt < DELETE_ATTEMPTS; attempt++) {
        if (attempt) await new Promise((r) => setTimeout(r, DELETE_RETRY_MS * attempt));
        failure = await this.options.client
          .send(new DeleteObjectCommand({ Bucket: this.options.bucket, Key }))
          .then(
            () => null,
            (e: Error) => e,
          );
        if (!failure) break;
      }
      if (failure)
        left.push(`s3://${this.options.bucket}/${Key} (${failure.name}: ${failure.message})`);
      else if (Key.endsWith('.json')) this.envelopeWritten = false;
    }
    return left;
  }

  private async commitSteps(): Promise<StoredMessage> {
    const { bucket, client } = this.options;
    if (this.failure) throw this.failure;
    if (this.aborted)
      throw new DequeueError(
        'temporary',
        `message ${this.envelope.id} was aborted while it was being stored`,
      );
    // The envelope and the message's last request(s) go at once: after the final dot the 250
    // waits for one S3 round trip (a small message) or two (a multipart upload's last part,
    // then its completion), not for the envelope first and the message after it.
    this.body.end();
    const envelopeKey = `${this.key}.json`;
    const envelopeStored = client
      .send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: envelopeKey,
          ContentType: 'application/json',
          Body: envelopeJson(this.envelope, `${this.key}.eml`, this.bytes, new Date()),
        }),
      )
      .then(
        () => {
          this.envelopeWritten = true;
          return null;
        },
        (e: unknown) => s3Error(`cannot write the envelope s3://${bucket}/${envelopeKey}`, e),
      );
    // The commit point: the object appears, complete, when the upload completes.
    const messageStored = this.uploaded.then(
      () => null,
      () =>
        this.failure ??
        new DequeueError('temporary', `cannot upload s3://${bucket}/${this.key}.eml`),
    );
    const [envelopeFailure, messageFailure] = await Promise.all([envelopeStored, messageStored]);
    const failure = messageFailure ?? envelopeFailure;
    if (failure) {
      // Leave neither without the other (an envelope alone is swept, a message alone would be
      // delivered without its envelope), and say so when one is left all the same.
      const left = await this.remove([
        ...(messageFailure ? [] : [`${this.key}.eml`]),
        ...(this.envelopeWritten ? [envelopeKey] : []),
      ]);
      if (!left.length) throw failure;
      throw new DequeueError(
        'temporary',
        `${failure.message}; and what was stored of it could not be removed: ${left.join(', ')}`,
        { cause: failure },
      );
    }
    return { id: this.envelope.id, location: `s3://${bucket}/${this.key}.eml`, bytes: this.bytes };
  }
}
