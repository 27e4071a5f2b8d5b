/**
 * One message of the mail directory (cli/adapters/mail-dir-sink.ts) on its way to the disk: the
 * draft that writes its open files (a Slot, mail-dir-slot.ts), commits or aborts it.
 */
import { access, open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { crc32 } from 'node:zlib';
import { envelopeJson } from '../../lambda/core/odmr/envelope-record';
import { DequeueError } from '../../lambda/core/errors';
import type { MailEnvelope, MessageDraft, StoredMessage } from '../../lambda/core/ports';
import { fsyncDir } from './durable-dirs';
import { RESOLVED, type Slot, storeError } from './mail-dir-slot';

/** One writev carries at most this much: the disk gets large writes, the queue drains steadily. */
const MAX_BATCH_BYTES = 4 * 1024 * 1024;

/**
 * Every this many bytes written, an fdatasync starts in the background. Linux would otherwise
 * keep the whole message in dirty pages until the final fsync (it starts writing back on its own
 * only after 30 s, or at a tenth of RAM), which then wrote 50 MB in about 27 ms while nothing
 * else happened; now it writes the last few MiB. Its result counts: a failed one fails the
 * message (after a writeback error, a later fsync of the same file may report success).
 */
const WRITEBACK_BYTES = 8 * 1024 * 1024;

/**
 * A write to the disk starts once this much is queued (or at the commit): a small message,
 * trace header included, goes down in one writev after the final dot instead of several
 * (each a trip through libuv's thread pool, which costs the session's thread too), through the
 * slot's O_DSYNC descriptor, which makes that write its fsync. A larger message streams to the
 * disk through a descriptor of its own without O_DSYNC (`streaming`), fsynced at the end.
 */
const MIN_WRITE_BYTES = 256 * 1024;

/** Both settled, then the first failure: nothing is left running when the caller cleans up. */
async function allOrFirstError<T extends readonly unknown[]>(
  steps: { [K in keyof T]: Promise<T[K]> },
): Promise<T> {
  const settled = await Promise.allSettled(steps);
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  return settled.map((r) => (r as PromiseFulfilledResult<unknown>).value) as unknown as T;
}

/**
 * rename(2), or nothing when another run has already done it: a run that recovers what a crash
 * left (mail-dir-recovery.ts) may finish a message of ours that is durable but not yet renamed.
 */
async function renameOrDone(from: string, to: string): Promise<void> {
  try {
    await rename(from, to);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    await access(to);
  }
}

/** writev until every byte is down (a regular file may take fewer bytes than asked). */
async function writeAll(file: FileHandle, buffers: Buffer[]): Promise<void> {
  let rest = buffers;
  while (rest.length) {
    const { bytesWritten } = await file.writev(rest);
    let skip = bytesWritten;
    let i = 0;
    while (i < rest.length && skip >= rest[i]!.length) skip -= rest[i++]!.length;
    rest = rest.slice(i);
    if (skip > 0) rest[0] = rest[0]!.subarray(skip);
  }
}

export class MailDirDraft implements MessageDraft {
  readonly withdrawable = true;
  private queue: Buffer[] = [];
  private queued = 0;
  private bytes = 0;
  private flushing: Promise<void> | null = null;
  /** The background fdatasync in flight (WRITEBACK_BYTES), and bytes written since the last. */
  private syncing: Promise<void> | null = null;
  private unsynced = 0;
  /** Writers waiting for the queue to fall back under highWater. */
  private waiters: (() => void)[] = [];
  private failure: DequeueError | null = null;
  private closing: Promise<void> | null = null;
  private committing: Promise<StoredMessage> | null = null;
  private abortRequested = false;
  /** CRC-32 of every byte written: the envelope carries it (mail-dir-recovery.ts). */
  private crc = 0;
  /** After the commit: the files closed. */
  private publishing: Promise<void> | null = null;
  /** After the commit: the directory's next fsync, which makes the two renames durable. */
  private renamesDurable: Promise<void> | null = null;
  /** The message's file without O_DSYNC, opened at its first write before the commit. */
  private streaming: Promise<FileHandle> | null = null;
  private readonly file: FileHandle;
  private readonly dir: string;
  private readonly eml: string;
  private readonly json: string;

  constructor(
    private readonly slot: Slot,
    private readonly envelope: MailEnvelope,
    private readonly highWater: number,
    /** Told what the commit stored (the disk guard's estimate of the free space). */
    private readonly space: { spend(bytes: number): void } | null = null,
  ) {
    this.file = slot.file;
    this.dir = slot.dir;
    this.eml = `${slot.dir}/${envelope.id}.eml`;
    this.json = `${slot.dir}/${envelope.id}.json`;
  }

  write(chunks: readonly Buffer[]): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.committing || this.abortRequested)
      return Promise.reject(new Error('write after commit or abort'));
    for (const chunk of chunks) {
      this.queue.push(chunk);
      this.queued += chunk.length;
      this.bytes += chunk.length;
      this.crc = crc32(chunk, this.crc);
    }
    if (this.queued >= MIN_WRITE_BYTES || this.queued > this.highWater)
      this.flushing ??= this.flush();
    if (this.queued <= this.highWater) return RESOLVED;
    return new Promise<void>((resolve) => this.waiters.push(resolve)).then(() => {
      if (this.failure) throw this.failure;
    });
  }

  commit(): Promise<StoredMessage> {
    this.committing ??= this.commitSteps();
    return this.committing;
  }

  /**
   * After a commit: resolves once its renames are durable and the files closed (the background
   * part of the commit; a caller that reads the disk's state, as the crash tests do, awaits it).
   * Asking makes the directory's fsync now rather than at the next message or the session's end.
   */
  get published(): Promise<void> {
    if (!this.renamesDurable) return this.publishing ?? RESOLVED;
    return Promise.all([this.publishing, this.renamesDurable, this.slot.fsyncs.flush()]).then(
      () => undefined,
    );
  }

  async abort(): Promise<void> {
    this.abortRequested = true;
    await this.flushing;
    await this.syncing?.catch(() => undefined);
    await this.committing?.catch(() => undefined);
    await this.publishing;
    await this.closeAll();
    // A commit that finished anyway is undone: without our 250 the provider still has it.
    let withdrawn = false;
    const left: string[] = [];
    for (const path of [this.eml, this.json, this.slot.emlTmp, this.slot.jsonTmp]) {
      const removed = await unlink(path).then(
        () => true,
        (e: NodeJS.ErrnoException) => {
          // Gone already is the usual case; anything else leaves a file a reader may see.
          if (e.code !== 'ENOENT') left.push(`${path} (${e.code ?? e.message})`);
          return false;
        },
      );
      if (removed && (path === this.eml || path === this.json)) withdrawn = true;
    }
    if (withdrawn) await fsyncDir(this.dir).catch(() => undefined);
    if (left.length) {
      throw new DequeueError(
        'temporary',
        `message ${this.envelope.id} was not acknowledged but could not be removed: ${left.join(', ')}; delete it, or the provider's next delivery makes a duplicate`,
      );
    }
  }

  /**
   * Writes queued chunks, up to MAX_BATCH_BYTES per writev, until the queue is empty; a waiting
   * writer goes on as soon as the queue is under highWater again, so the socket and the disk
   * work at the same time. Never rejects (sets failure).
   */
  private async flush(): Promise<void> {
    try {
      while (this.queue.length && !this.failure) {
        let size = 0;
        let count = 0;
        while (count < this.queue.length && size < MAX_BATCH_BYTES)
          size += this.queue[count++]!.length;
        const batch = this.queue.splice(0, count);
        await writeAll(await this.streamingFile(), batch);
        this.unsynced += size;
        if (this.unsynced >= WRITEBACK_BYTES && !this.syncing) this.writeBack();
        this.queued -= size;
        if (this.queued <= this.highWater) this.release();
      }
    } catch (e) {
      this.failure = storeError(this.envelope.id, this.dir, e);
    } finally {
      this.flushing = null;
      this.release();
    }
  }

  /** The message's file for writes before the commit, opened once (a second descriptor). */
  private streamingFile(): Promise<FileHandle> {
    this.streaming ??= open(this.slot.emlTmp, 'r+');
    return this.streaming;
  }

  /** Start an fdatasync of what is written so far, not awaited here (WRITEBACK_BYTES). */
  private writeBack(): void {
    this.unsynced = 0;
    const syncing: Promise<void> = this.streamingFile()
      .then((file) => file.datasync())
      .then(
        () => undefined,
        (e: unknown) => {
          this.failure ??= storeError(this.envelope.id, this.dir, e);
        },
      )
      .finally(() => {
        if (this.syncing === syncing) this.syncing = null;
      });
    this.syncing = syncing;
  }

  private release(): void {
    for (const wake of this.waiters.splice(0)) wake();
  }

  private checkpoint(): void {
    if (this.failure) throw this.failure;
    if (this.abortRequested)
      throw new DequeueError(
        'temporary',
        `message ${this.envelope.id} was aborted while it was being stored`,
      );
  }

  /**
   * After the final dot, three things at once: the message's last write and its fsync, the
   * envelope's one O_DSYNC write (its byte count and CRC are known: every write is queued), and
   * the directory's fsync that MAIL started for the two hidden names. Once all three are done the
   * message is durable, whole, under those names: a crash from here leaves it for the next run to
   * finish (mail-dir-recovery.ts), so the 250 may go out. Before it does, the envelope is renamed
   * and then the message (its appearance is the commit point for a reader); the directory's fsync
   * that makes the renames durable comes later, shared with the next message's (DirectoryFsyncs),
   * and the files are closed now.
   */
  private async commitSteps(): Promise<StoredMessage> {
    const id = this.envelope.id;
    try {
      this.checkpoint();
      const record = Buffer.from(
        envelopeJson(this.envelope, `${id}.eml`, this.bytes, new Date(), this.crc),
      );
      await allOrFirstError([
        this.syncMessage(),
        writeAll(this.slot.json, [record]),
        this.slot.entriesDurable,
      ]);
      this.checkpoint();
      await renameOrDone(this.slot.jsonTmp, this.json);
      await renameOrDone(this.slot.emlTmp, this.eml);
      this.space?.spend(this.bytes + record.length);
      this.renamesDurable = this.slot.fsyncs.nextSync();
      this.publishing = this.closeAll();
      return { id, location: this.eml, bytes: this.bytes };
    } catch (e) {
      if (e instanceof DequeueError) throw e;
      throw storeError(id, this.dir, e);
    }
  }

  /**
   * Every byte durable: a message that never started streaming is written whole, now, through the
   * O_DSYNC descriptor (that write is its fsync); a streamed one gets its last writes, the
   * background writeback settled, then fsync.
   */
  private async syncMessage(): Promise<void> {
    if (!this.streaming) {
      const whole = this.queue.splice(0);
      this.queued = 0;
      await writeAll(this.file, whole);
      return;
    }
    if (this.queue.length) this.flushing ??= this.flush();
    await this.flushing;
    await this.syncing;
    this.checkpoint();
    await (await this.streaming).sync();
  }

  /** Close the message (both its descriptors), the envelope and the directory, once. Never rejects. */
  private closeAll(): Promise<void> {
    this.closing ??= Promise.all([
      this.slot.close(),
      this.streaming?.then(
        (file) => file.close().catch(() => undefined),
        () => undefined,
      ),
    ]).then(() => undefined);
    return this.closing;
  }
}
