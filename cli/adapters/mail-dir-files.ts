/**
 * The mail directory's reads on deliver's hot path (mail-dir-store.ts, mail-dir-claim.ts): file
 * descriptors and node:fs's callback calls, bounded reads of the envelope and of a small message.
 */
import { close as closeFd, open as openFd, read as readFd } from 'node:fs';
import { readFile } from 'node:fs/promises';

export const READ_CHUNK_BYTES = 256 * 1024;
/** An envelope record is a few hundred bytes; one read of this much takes it whole. */
const ENVELOPE_READ_BYTES = 64 * 1024;

/*
 * The reads of deliver's hot path go through file descriptors and node:fs's callback calls, not
 * FileHandle: per message they are an open, a read and a close of the envelope and of the text,
 * and FileHandle's objects, promises and close-on-collection bookkeeping cost as much CPU as the
 * calls themselves (bench/deliver.ts). Every descriptor opened here is closed on every path.
 */
export const fdOpen = (path: string): Promise<number> =>
  new Promise((resolve, reject) => openFd(path, 'r', (e, fd) => (e ? reject(e) : resolve(fd))));
export const fdRead = (fd: number, buffer: Buffer, position: number): Promise<number> =>
  new Promise((resolve, reject) =>
    readFd(fd, buffer, 0, buffer.length, position, (e, n) => (e ? reject(e) : resolve(n))),
  );
/** Never rejects: a close that fails loses nothing of a file opened only to read. */
export const fdClose = (fd: number): Promise<void> =>
  new Promise((resolve) => closeFd(fd, () => resolve()));

/** A small file's text: one open, one read, one close (readFile adds an fstat and reads twice). */
export async function readSmall(path: string): Promise<string> {
  const fd = await fdOpen(path);
  try {
    const buffer = Buffer.allocUnsafe(ENVELOPE_READ_BYTES);
    const bytesRead = await fdRead(fd, buffer, 0);
    // Larger than any envelope we write: read it the long way.
    if (bytesRead === buffer.length) return await readFile(path, 'utf8');
    return buffer.toString('utf8', 0, bytesRead);
  } finally {
    await fdClose(fd);
  }
}

/**
 * The whole of a small message, expected to be `size` bytes: one read asks for one byte more, and
 * a read of a regular file returns less than asked only at its end. Null when the file holds more
 * than its envelope says (it grew after the envelope was written, which it should not): it is
 * then streamed like a large one, so memory stays bounded whatever the file holds.
 */
export async function readWhole(fd: number, size: number): Promise<Buffer[] | null> {
  const buffer = Buffer.allocUnsafe(size + 1);
  const bytesRead = await fdRead(fd, buffer, 0);
  if (bytesRead <= size) return [buffer.subarray(0, bytesRead)];
  return null;
}
