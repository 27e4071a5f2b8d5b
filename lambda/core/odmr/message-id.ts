/** The id the reversed session gives each message it receives: envelope, trace header, store. */
import { randomFillSync } from 'node:crypto';

/** Random bytes for message ids, taken 6 at a time from a pool filled 1.5 KiB at a time. */
const idPool = Buffer.alloc(1536);
let idAt = idPool.length;

/** Sortable by time, unique: `20240102T030405123Z-1a2b3c4d5e6f`. */
export function messageId(date: Date): string {
  // One call into the random generator per 256 messages, not one each (a profile showed it).
  if (idAt + 6 > idPool.length) {
    randomFillSync(idPool);
    idAt = 0;
  }
  const random = idPool.toString('hex', idAt, (idAt += 6));
  return `${date.toISOString().replace(/[-:.]/g, '')}-${random}`;
}
