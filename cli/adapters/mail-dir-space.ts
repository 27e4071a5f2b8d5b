/**
 * The mail directory's disk guard (--min-free-mib): a new message is refused at MAIL with
 * `452 4.3.1 Insufficient system storage` (RFC 3463) while the file system's free space is below
 * the bound, or would be once a message of the declared SIZE is stored (RFC 1870 section 6.1),
 * before any file is created. The disk keeps its margin for everything else on it, and the
 * provider keeps the message for a later cycle, as Postfix does with `queue_minfree`. ENOSPC in
 * the middle of a message still gets 451 (nothing is lost either way).
 */
import { statfs } from 'node:fs/promises';
import { DequeueError } from '../../lambda/core/errors';
import type { MailRefusal, TransactionStart } from '../../lambda/core/ports';

/** Free space kept on the mail directory's file system without --min-free-mib. */
export const DEFAULT_MIN_FREE_BYTES = 100 * 1024 * 1024;

/** statfs(2): the blocks an unprivileged process may still write, in bytes. */
export async function statfsFreeBytes(dir: string): Promise<number> {
  const fs = await statfs(dir);
  return fs.bavail * fs.bsize;
}

/** Reads the free space of the file system under a directory; tests give a fake. */
export type FreeSpaceReader = (dir: string) => Promise<number>;

/** How long a statfs reading stands in for the next ones, while far from the bound. */
export const FREE_SPACE_MAX_AGE_MS = 250;

/**
 * statfs at MAIL without a trip to the disk for every message: a reading stands for
 * FREE_SPACE_MAX_AGE_MS, less what the mail directory stored since (`spend`), as long as it
 * leaves a quarter more than the message needs (the bound and its SIZE; at least 16 MiB more).
 * Near the bound
 * every MAIL reads the disk again, so the guard decides as exactly as without the gauge; far from
 * it, another writer on the file system has at most FREE_SPACE_MAX_AGE_MS to go unseen, as it
 * would between a MAIL and the end of its message anyway.
 */
export class FreeSpaceGauge {
  private reading: { free: number; at: number; spent: number } | null = null;

  constructor(
    private readonly read: FreeSpaceReader,
    private readonly now: () => number = Date.now,
  ) {}

  /** The free space under `dir`, for a message that needs `need` bytes free to be admitted. */
  async freeBytes(dir: string, need: number): Promise<number> {
    const last = this.reading;
    if (last && this.now() - last.at < FREE_SPACE_MAX_AGE_MS) {
      const estimate = last.free - last.spent;
      if (estimate >= need + Math.max(need / 4, 16 * 1024 * 1024)) return estimate;
    }
    this.reading = null;
    const free = await this.read(dir);
    this.reading = { free, at: this.now(), spent: 0 };
    return free;
  }

  /** Bytes the mail directory stored since the last reading. */
  spend(bytes: number): void {
    if (this.reading) this.reading.spent += bytes;
  }
}

/**
 * Whether a message may come into `root` now: null when it may, else the 452. `closing` when the
 * free space is below the bound whatever the message (nothing more this session).
 */
export async function admitBySpace(
  root: string,
  minFree: number,
  freeBytes: FreeSpaceReader,
  mail: Pick<TransactionStart, 'declaredSize'>,
): Promise<MailRefusal | null> {
  if (minFree <= 0) return null;
  let free: number;
  try {
    free = await freeBytes(root);
  } catch {
    // Not knowing the free space is no reason to refuse mail; a write that fails still says 451.
    return null;
  }
  if (free >= minFree + (mail.declaredSize ?? 0)) return null;
  const below = free < minFree;
  return {
    code: 452,
    text: '4.3.1 Insufficient system storage',
    closing: below,
    error: new DequeueError(
      'temporary',
      below
        ? `the mail directory ${root} has ${mib(free)} free, less than the ${mib(minFree)} it keeps (--min-free-mib): new mail is refused with 452 4.3.1 and stays with the provider`
        : `a message of ${mail.declaredSize} bytes would leave the mail directory ${root} less than the ${mib(minFree)} free it keeps (--min-free-mib): refused with 452 4.3.1, it stays with the provider`,
    ),
  };
}

/** "12.5 MiB": a size for a person. */
export function mib(bytes: number): string {
  return `${Math.round((bytes / 1024 / 1024) * 10) / 10} MiB`;
}
