/** Directories of the mail store that survive a crash: each new one fsynced into its parent. */
import { mkdir, open, stat } from 'node:fs/promises';
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
