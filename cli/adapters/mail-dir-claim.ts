/**
 * A message of the mail directory claimed by a deliver run (mail-dir-store.ts has the layout and
 * the claim rules): its text, read whole at the claim or streamed from its open file, and the
 * marks, which the store makes.
 */
import type { EnvelopeRecord } from '../../lambda/core/odmr/envelope-record';
import type {
  ClaimedMail,
  DsnRecord,
  ExpiredRecipient,
  RecipientAnswer,
  StoredRef,
} from '../delivery/mail-store';
import type { ProgressRecord } from '../delivery/progress-record';
import { fdClose, fdRead, READ_CHUNK_BYTES } from './mail-dir-files';

/** What is written beside a message moved to failed/: the replies, the DSNs sent, why. */
export interface FailureRecord {
  readonly recipients: readonly unknown[];
  readonly notified: readonly DsnRecord[];
  readonly reason?: string;
}

/** What a claim needs of its store: the marks. */
export interface MailDirMarks {
  move(
    dir: string,
    id: string,
    sub: 'delivered' | 'failed',
    replies?: FailureRecord,
  ): Promise<void>;
  recordProgress(
    dir: string,
    id: string,
    answers: readonly RecipientAnswer[],
    notified: readonly DsnRecord[],
  ): Promise<void>;
}

type ChunkRead = { readonly chunk: Buffer } | { readonly error: unknown };

export class MailDirClaim implements ClaimedMail {
  private closed: Promise<void> | null = null;
  /** Reads of the file in flight (stream): the close waits for them. */
  private readonly reading = new Set<Promise<ChunkRead>>();
  readonly answered: readonly RecipientAnswer[];
  readonly notified: readonly DsnRecord[];

  constructor(
    private readonly store: MailDirMarks,
    readonly ref: StoredRef,
    private readonly dir: string,
    readonly envelope: EnvelopeRecord,
    progress: ProgressRecord,
    /** The message's open file descriptor, closed by the mark or the release. */
    private readonly file: number,
    /** The whole text, when it was small enough to be read at the claim. */
    private readonly text: readonly Buffer[] | null,
    /** Why the envelope cannot be used (ClaimedMail.problem). */
    readonly problem?: string,
  ) {
    this.answered = progress.answers;
    this.notified = progress.notified;
  }

  open(): AsyncIterable<Buffer> | Iterable<Buffer> {
    if (this.text) return this.text;
    return this.stream();
  }

  /**
   * The file in chunks, the next one read while this one is stuffed and written: the disk read (a
   * trip to libuv's thread pool) overlaps the socket's draining instead of following it, and one
   * read ahead keeps memory flat (bench/deliver.ts).
   */
  private async *stream(): AsyncGenerator<Buffer> {
    let position = 0;
    let next = this.readAt(position);
    for (;;) {
      const read = await next;
      if ('error' in read) throw read.error;
      if (read.chunk.length === 0) return;
      position += read.chunk.length;
      next = this.readAt(position);
      yield read.chunk;
    }
  }

  /**
   * One chunk from `position`; never rejects (a failure is returned, for the stream to throw
   * when it gets there: a read ahead that nobody awaits any more fails quietly). The file is not
   * closed while it is in flight: its number could be reused by another open meanwhile.
   */
  private readAt(position: number): Promise<ChunkRead> {
    if (this.closed)
      return Promise.resolve({ error: new Error(`message ${this.ref.id}: its file is closed`) });
    const buffer = Buffer.allocUnsafe(READ_CHUNK_BYTES);
    const read = fdRead(this.file, buffer, position).then(
      (bytesRead): ChunkRead => ({ chunk: buffer.subarray(0, bytesRead) }),
      (error: unknown): ChunkRead => ({ error }),
    );
    this.reading.add(read);
    void read.then(() => this.reading.delete(read));
    return read;
  }

  /** The message file closed, once, after the reads in flight; never rejects. */
  private close(): Promise<void> {
    this.closed ??= Promise.all(this.reading).then(() => fdClose(this.file));
    return this.closed;
  }

  async delivered(): Promise<void> {
    await this.close();
    await this.store.move(this.dir, this.ref.id, 'delivered');
  }

  async failed(
    answers: readonly (RecipientAnswer | ExpiredRecipient)[],
    notified: readonly DsnRecord[],
    reason?: string,
  ): Promise<void> {
    await this.close();
    await this.store.move(this.dir, this.ref.id, 'failed', {
      recipients: answers,
      notified,
      ...(reason ? { reason } : {}),
    });
  }

  async deferred(
    answers: readonly RecipientAnswer[],
    notified: readonly DsnRecord[],
  ): Promise<void> {
    await this.close();
    await this.record(answers, notified);
  }

  async record(answers: readonly RecipientAnswer[], notified: readonly DsnRecord[]): Promise<void> {
    if (answers.length || notified.length)
      await this.store.recordProgress(this.dir, this.ref.id, answers, notified);
  }

  release(): Promise<void> {
    return this.close();
  }
}
