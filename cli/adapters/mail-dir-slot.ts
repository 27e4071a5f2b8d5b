/**
 * The open files of one message of the mail directory (cli/adapters/mail-dir-sink.ts) before it
 * has any data: opened at MAIL or at DATA, then written and committed by its draft
 * (mail-dir-draft.ts), or released when the transaction is abandoned.
 */
import { constants } from 'node:fs';
import { open, unlink, type FileHandle } from 'node:fs/promises';
import { DequeueError } from '../../lambda/core/errors';
import type { DirectoryFsyncs } from './durable-dirs';

export const RESOLVED = Promise.resolve();

/**
 * Both files are created with O_DSYNC: the envelope is written once, whole, at the commit, and so
 * is a small message (mail-dir-draft.ts), and with O_DSYNC that write is its fsync, one trip
 * through libuv's thread pool instead of two after the final dot. A large message is written as
 * it comes through a second descriptor without it.
 */
const SYNCED_WRITE_FLAGS =
  constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_DSYNC;

/**
 * The open files of one message before it has any data: its `.part` file, its envelope's `.part`
 * file and the directory, opened at once. On failure nothing of it is left (opened handles
 * closed, created files removed).
 */
export class Slot {
  readonly emlTmp: string;
  readonly jsonTmp: string;
  readonly ready: Promise<void>;
  /** The message's `.part` file, written with O_DSYNC. */
  file!: FileHandle;
  json!: FileHandle;
  dirHandle!: FileHandle;
  private released: Promise<void> | null = null;

  constructor(
    readonly dir: string,
    name: string,
    prepared: Promise<void>,
    /** The directory's fsyncs, shared with its other messages. */
    readonly fsyncs: DirectoryFsyncs,
  ) {
    this.emlTmp = `${dir}/${name}.eml.part`;
    this.jsonTmp = `${dir}/${name}.json.part`;
    this.ready = this.open(prepared);
    // Handled here; whoever takes the slot awaits it again and sees the failure.
    this.ready.catch(() => undefined);
  }

  private async open(prepared: Promise<void>): Promise<void> {
    await prepared;
    const steps = [
      open(this.emlTmp, SYNCED_WRITE_FLAGS, 0o600),
      open(this.jsonTmp, SYNCED_WRITE_FLAGS, 0o600),
      open(this.dir, 'r'),
    ] as const;
    const settled = await Promise.allSettled(steps);
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      await Promise.all(
        settled.map(async (r, i) => {
          if (r.status !== 'fulfilled') return;
          await r.value.close().catch(() => undefined);
          if (i < 2) await unlink(i === 0 ? this.emlTmp : this.jsonTmp).catch(() => undefined);
        }),
      );
      throw failed.reason;
    }
    [this.file, this.json, this.dirHandle] = settled.map(
      (r) => (r as PromiseFulfilledResult<FileHandle>).value,
    ) as [FileHandle, FileHandle, FileHandle];
    // The two new names made durable now, while the session reads RCPT, DATA and the message:
    // after the final dot only the files' contents are waited for (the commit, below). The same
    // fsync makes the previous message's renames durable (DirectoryFsyncs).
    this.entries = this.fsyncs.sync(this.dirHandle);
    this.entries.catch(() => undefined);
  }

  /** The directory's fsync that makes the two hidden names durable (started once they exist). */
  get entriesDurable(): Promise<void> {
    return this.entries;
  }
  private entries: Promise<void> = RESOLVED;

  /** Close the handles, once the directory's fsync is done. Never rejects. */
  close(): Promise<void> {
    return this.entries
      .catch(() => undefined)
      .then(() =>
        Promise.all(
          [this.file, this.json, this.dirHandle].map((h) => h.close().catch(() => undefined)),
        ),
      )
      .then(() => undefined);
  }

  /** An abandoned transaction: close and remove what was opened. Never rejects. */
  release(): Promise<void> {
    this.released ??= this.ready.then(
      async () => {
        await this.close();
        await Promise.all(
          [unlink(this.emlTmp), unlink(this.jsonTmp)].map((p) => p.catch(() => undefined)),
        );
      },
      () => undefined,
    );
    return this.released;
  }
}

export function storeError(id: string, dir: string, e: unknown): DequeueError {
  // Temporary whatever the cause (full disk, permissions): the provider keeps the message.
  return new DequeueError(
    'temporary',
    `cannot store message ${id} in ${dir}: ${(e as Error).message}`,
    { cause: e },
  );
}
