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

/** What a claim needs of its store: the marks. */
export interface MailDirMarks {
  move(
    dir: string,
    id: string,
    sub: 'delivered' | 'failed',
    replies?: {
      readonly recipients: readonly unknown[];
      readonly notified: readonly DsnRecord[];
      readonly reason?: string;
    },
  ): Promise<void>;
  recordProgress(
    dir: string,
    id: string,
    answers: readonly RecipientAnswer[],
    notified: readonly DsnRecord[],
  ): Promise<void>;
}

export class MailDirClaim implements ClaimedMail {
  private closed: Promise<void> | null = null;
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

  private async *stream(): AsyncGenerator<Buffer> {
    let position = 0;
    for (;;) {
      const buffer = Buffer.allocUnsafe(READ_CHUNK_BYTES);
      const bytesRead = await fdRead(this.file, buffer, position);
      if (bytesRead === 0) return;
      position += bytesRead;
      yield buffer.subarray(0, bytesRead);
    }
  }

  /** The message file closed, once; never rejects. */
  private close(): Promise<void> {
    this.closed ??= fdClose(this.file);
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
