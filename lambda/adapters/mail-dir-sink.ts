/**
 * The CLI's mail store (`--mail-dir DIR`): one file per message, its envelope as JSON beside it.
 *
 *   DIR/<target>/<id>.eml    the message as received (dot-unstuffed), our trace header first
 *   DIR/<target>/<id>.json   the envelope (lambda/core/envelope-record.ts)
 *
 * A reader never sees half a message: both are written under hidden temporary names
 * (`.<id>.eml.part`), fsynced, then renamed, the `.eml` last (its appearance is the commit
 * point), and the directory is fsynced before the sink reports the message stored, which is
 * what lets the session answer 250. A reader should look for `*.eml`; its `.json` is already
 * there by then. Files are private to the user (0600, directories 0700).
 *
 * Writes are queued and flushed in batches (one writev per batch) so the disk sees large writes
 * while the session keeps reading; the queue is capped (highWaterBytes) and a full queue makes
 * the session wait, which makes the provider wait (TCP backpressure).
 */
import { constants } from 'node:fs';
import { access, mkdir, open, readdir, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { envelopeJson } from '../core/envelope-record';
import { ConfigError, DequeueError } from '../core/errors';
import type { MailEnvelope, MailSink, MessageDraft, StoredMessage } from '../core/ports';

export interface MailDirSinkOptions {
  /** Bytes queued for the disk before a write waits. Default 4 MiB. */
  readonly highWaterBytes?: number;
  /** Leftover `.part` files older than this are removed when a directory is first used. Default 24 h. */
  readonly staleAfterMs?: number;
}

const DEFAULT_HIGH_WATER_BYTES = 4 * 1024 * 1024;
const DEFAULT_STALE_AFTER_MS = 24 * 60 * 60_000;
/** One writev carries at most this much: the disk gets large writes, the queue drains steadily. */
const MAX_BATCH_BYTES = 4 * 1024 * 1024;

/**
 * The CLI's `--mail-dir`, checked before anything is sent: created if missing, and writable, or
 * a ConfigError naming it (exit status 2, SPEC "Command line").
 */
export async function openMailDir(root: string, options: MailDirSinkOptions = {}): Promise<MailSink> {
  try {
    await mkdir(root, { recursive: true, mode: 0o700 });
    await access(root, constants.W_OK | constants.X_OK);
  } catch (e) {
    throw new ConfigError('--mail-dir', '', `${root}: cannot store mail there (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { cause: e });
  }
  return createMailDirSink(root, options);
}

export function createMailDirSink(root: string, options: MailDirSinkOptions = {}): MailSink {
  const highWater = options.highWaterBytes ?? DEFAULT_HIGH_WATER_BYTES;
  const staleAfter = options.staleAfterMs ?? DEFAULT_STALE_AFTER_MS;
  const prepared = new Map<string, Promise<void>>();

  const prepare = (dir: string): Promise<void> => {
    let ready = prepared.get(dir);
    if (!ready) {
      ready = (async () => {
        await mkdir(dir, { recursive: true, mode: 0o700 });
        await sweepStale(dir, staleAfter);
      })();
      // A failure is retried by the next message rather than remembered.
      ready.catch(() => prepared.delete(dir));
      prepared.set(dir, ready);
    }
    return ready;
  };

  return {
    async begin(envelope: MailEnvelope): Promise<MessageDraft> {
      const dir = join(root, envelope.target);
      try {
        await prepare(dir);
        const file = await open(join(dir, `.${envelope.id}.eml.part`), 'wx', 0o600);
        return new MailDirDraft(file, dir, envelope, highWater);
      } catch (e) {
        throw storeError(envelope.id, dir, e);
      }
    },
  };
}

function storeError(id: string, dir: string, e: unknown): DequeueError {
  // Temporary whatever the cause (full disk, permissions): the provider keeps the message.
  return new DequeueError('temporary', `cannot store message ${id} in ${dir}: ${(e as Error).message}`, { cause: e });
}

/** Remove `.part` files a crashed run left behind: their messages were never acknowledged. */
async function sweepStale(dir: string, olderThanMs: number): Promise<void> {
  const cutoff = Date.now() - olderThanMs;
  for (const name of await readdir(dir)) {
    if (!name.startsWith('.') || !name.endsWith('.part')) continue;
    const path = join(dir, name);
    const info = await stat(path).catch(() => null);
    if (info && info.mtimeMs < cutoff) await unlink(path).catch(() => undefined);
  }
}

async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
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

const RESOLVED = Promise.resolve();

class MailDirDraft implements MessageDraft {
  private queue: Buffer[] = [];
  private queued = 0;
  private bytes = 0;
  private flushing: Promise<void> | null = null;
  /** Writers waiting for the queue to fall back under highWater. */
  private waiters: (() => void)[] = [];
  private failure: DequeueError | null = null;
  private fileOpen = true;
  private committing: Promise<StoredMessage> | null = null;
  private abortRequested = false;
  private readonly emlTmp: string;
  private readonly jsonTmp: string;
  private readonly eml: string;
  private readonly json: string;

  constructor(
    private readonly file: FileHandle,
    private readonly dir: string,
    private readonly envelope: MailEnvelope,
    private readonly highWater: number,
  ) {
    const id = envelope.id;
    this.emlTmp = join(dir, `.${id}.eml.part`);
    this.jsonTmp = join(dir, `.${id}.json.part`);
    this.eml = join(dir, `${id}.eml`);
    this.json = join(dir, `${id}.json`);
  }

  write(chunks: readonly Buffer[]): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.committing || this.abortRequested) return Promise.reject(new Error('write after commit or abort'));
    for (const chunk of chunks) {
      this.queue.push(chunk);
      this.queued += chunk.length;
      this.bytes += chunk.length;
    }
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

  async abort(): Promise<void> {
    this.abortRequested = true;
    await this.flushing;
    await this.committing?.catch(() => undefined);
    if (this.fileOpen) {
      this.fileOpen = false;
      await this.file.close().catch(() => undefined);
    }
    // A commit that finished anyway is undone: without our 250 the provider still has it.
    let withdrawn = false;
    for (const path of [this.eml, this.json, this.emlTmp, this.jsonTmp]) {
      const removed = await unlink(path).then(() => true, () => false);
      if (removed && (path === this.eml || path === this.json)) withdrawn = true;
    }
    if (withdrawn) await fsyncDir(this.dir).catch(() => undefined);
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
        while (count < this.queue.length && size < MAX_BATCH_BYTES) size += this.queue[count++]!.length;
        const batch = this.queue.splice(0, count);
        await writeAll(this.file, batch);
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

  private release(): void {
    for (const wake of this.waiters.splice(0)) wake();
  }

  private checkpoint(): void {
    if (this.failure) throw this.failure;
    if (this.abortRequested) throw new DequeueError('temporary', `message ${this.envelope.id} was aborted while it was being stored`);
  }

  private async commitSteps(): Promise<StoredMessage> {
    const id = this.envelope.id;
    try {
      await this.flushing;
      this.checkpoint();
      await this.file.sync();
      this.fileOpen = false;
      await this.file.close();
      const json = await open(this.jsonTmp, 'wx', 0o600);
      try {
        await json.writeFile(envelopeJson(this.envelope, `${id}.eml`, this.bytes, new Date()));
        await json.sync();
      } finally {
        await json.close();
      }
      this.checkpoint();
      await rename(this.jsonTmp, this.json);
      // The commit point: from here a reader sees the message, complete.
      await rename(this.emlTmp, this.eml);
      await fsyncDir(this.dir);
      return { id, location: this.eml, bytes: this.bytes };
    } catch (e) {
      if (e instanceof DequeueError) throw e;
      throw storeError(id, this.dir, e);
    }
  }
}
