/** Directories of the mail store that survive a crash: each new one fsynced into its parent. */
import { type FileHandle, mkdir, open, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';

/**
 * mkdir -p, then fsync the parent of every directory it created: a new directory's entry is only
 * durable once its parent is synced, and a message fsynced inside a directory that a crash then
 * forgets is lost all the same.
 */
export async function makeDirectory(dir: string): Promise<void> {
  const top = await makeDirectories(dir);
  if (top === undefined) return;
  for (let created = resolve(dir); ; created = dirname(created)) {
    await fsyncDir(dirname(created));
    if (created === top || dirname(created) === created) break;
  }
}

/**
 * mkdir -p one level at a time, from the nearest directory that exists; resolves to the first
 * directory it created (undefined: none). Not node's `recursive` mode: that reports ENOENT for a
 * read-only file system, and never returns at all for a path under /proc (the mkdir of a missing
 * parent keeps failing with ENOENT, and node keeps trying it).
 */
async function makeDirectories(dir: string): Promise<string | undefined> {
  const missing: string[] = [];
  for (let at = resolve(dir); ; ) {
    // ENOTDIR: a file is in the way further up; the walk finds it and names it.
    const info = await stat(at).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT' || e.code === 'ENOTDIR') return undefined;
      throw e;
    });
    if (info) {
      if (!info.isDirectory())
        throw Object.assign(new Error(`ENOTDIR: not a directory, mkdir '${at}'`), {
          code: 'ENOTDIR',
          path: at,
        });
      break;
    }
    missing.push(at);
    const parent = dirname(at);
    if (parent === at) break;
    at = parent;
  }
  missing.reverse();
  for (const at of missing) {
    await mkdir(at, { mode: 0o700 }).catch((e: NodeJS.ErrnoException) => {
      // Made meanwhile by someone else (another run, the next target's folder): fine if a directory.
      if (e.code !== 'EEXIST') throw e;
    });
  }
  return missing[0];
}

export async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * The fsyncs of one directory of the mail store, shared between its messages. A message's two
 * renames need the directory's fsync to be durable, and so do the hidden names the next message
 * creates at its MAIL: one fsync after both does for both. So a message's renames wait for the
 * next fsync of their directory, the one the next message's MAIL makes anyway, or the one
 * `flush` makes when the session ends (MailSink.settle) or a caller reads the disk: one directory
 * fsync a message instead of two. Nothing is at risk meanwhile: a message is acknowledged only
 * once it is durable under its hidden names, and a crash that undoes its renames leaves it for
 * the next run to finish (mail-dir-recovery.ts).
 */
export class DirectoryFsyncs {
  /** Renames made and not yet covered by an fsync, each resolved by the next one that starts. */
  private waiting: (() => void)[] = [];
  private flushing: Promise<void> = Promise.resolve();

  constructor(readonly dir: string) {}

  /**
   * fsync through `handle` (the directory, opened by the caller): every rename made before it
   * starts is durable once it is done. A failure is the caller's; the renames it would have
   * covered wait for the next one.
   */
  async sync(handle: FileHandle): Promise<void> {
    const covered = this.waiting.splice(0);
    try {
      await handle.sync();
    } catch (e) {
      this.waiting.unshift(...covered);
      throw e;
    }
    for (const done of covered) done();
  }

  /** Resolves once an fsync of the directory that started after this call is done. */
  nextSync(): Promise<void> {
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  /**
   * The renames still waiting, made durable now. Never rejects: a directory that cannot be
   * synced releases its waiters all the same (the messages are durable under their hidden names).
   */
  flush(): Promise<void> {
    this.flushing = this.flushing.then(async () => {
      if (!this.waiting.length) return;
      const covered = this.waiting.splice(0);
      await fsyncDir(this.dir).catch(() => undefined);
      for (const done of covered) done();
    });
    return this.flushing;
  }
}
