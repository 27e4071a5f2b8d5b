/** Directories of the mail store that survive a crash: each new one fsynced into its parent. */
import { mkdir, open } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';

/**
 * mkdir -p, then fsync the parent of every directory it created: a new directory's entry is only
 * durable once its parent is synced, and a message fsynced inside a directory that a crash then
 * forgets is lost all the same.
 */
export async function makeDirectory(dir: string): Promise<void> {
  const first = await mkdir(dir, { recursive: true, mode: 0o700 });
  if (first === undefined) return;
  const top = resolve(first);
  for (let created = resolve(dir); ; created = dirname(created)) {
    await fsyncDir(dirname(created));
    if (created === top || dirname(created) === created) break;
  }
}

export async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
