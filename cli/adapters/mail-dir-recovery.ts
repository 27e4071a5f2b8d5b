/**
 * What a crashed run left in a mail directory (cli/adapters/mail-dir-sink.ts), dealt with when
 * the directory is next used to store mail: first the messages a crash caught after their 250
 * are finished, then what no one acknowledged is removed once old.
 *
 * A message is acknowledged once it is durable, whole, under its hidden names (`.<n>.eml.part`
 * and its envelope `.<n>.json.part`); its two renames, and the directory's fsync that makes them
 * durable, come after. A power cut can therefore leave an acknowledged message hidden, or its
 * envelope renamed and the message not. Such a message is recognised by its envelope: complete
 * JSON naming the message's size and CRC-32, and a hidden message of exactly that size and CRC.
 * It is renamed as its commit would have done (the envelope first, the message last) once it is
 * older than a commit can take (RFC 5321 4.5.3.2.6: 10 minutes), so that a commit in progress in
 * another run is never overtaken. Anything else hidden was never acknowledged: the provider
 * still has it, and it is removed when older than a day.
 */
import { createReadStream } from 'node:fs';
import { open, readdir, readFile, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import type { EnvelopeRecord } from '../../lambda/core/odmr/envelope-record';

/** A commit takes at most this long (RFC 5321 4.5.3.2.6): an older complete message is not in progress. */
export const COMMIT_BOUND_MS = 10 * 60_000;
/** An envelope larger than this is not one the sink wrote. */
const MAX_ENVELOPE_BYTES = 1024 * 1024;

/**
 * Finish the messages a crash caught after their 250 (older than `recoverAfterMs`), then remove
 * what no one acknowledged (older than `staleAfterMs`).
 */
export async function recoverAndSweep(
  dir: string,
  staleAfterMs: number,
  recoverAfterMs = COMMIT_BOUND_MS,
): Promise<void> {
  if (await recover(dir, Date.now() - recoverAfterMs)) await syncDir(dir);
  await sweepStale(dir, staleAfterMs);
}

/** The renames a crash undid, redone; true when any was. */
async function recover(dir: string, cutoff: number): Promise<boolean> {
  const names = await readdir(dir);
  const present = new Set(names);
  const hiddenMessages = names.filter((n) => n.startsWith('.') && n.endsWith('.eml.part'));
  let finished = false;
  for (const name of names) {
    const hidden = name.startsWith('.') && name.endsWith('.json.part');
    const orphan =
      !name.startsWith('.') &&
      name.endsWith('.json') &&
      !present.has(`${name.slice(0, -'.json'.length)}.eml`);
    if (!hidden && !orphan) continue;
    const path = join(dir, name);
    const record = await readEnvelope(path, cutoff);
    if (!record) continue;
    const eml = `${record.id}.eml`;
    if (record.message !== eml || present.has(eml)) continue;
    // Its message: beside a hidden envelope, the hidden message of the same transaction; beside
    // a renamed one, whichever hidden message has its size and CRC.
    const candidates = hidden
      ? [`${name.slice(0, -'.json.part'.length)}.eml.part`]
      : hiddenMessages.filter((n) => present.has(n));
    for (const candidate of candidates) {
      if (!(await matches(join(dir, candidate), record))) continue;
      if (hidden) await rename(path, join(dir, `${record.id}.json`));
      await rename(join(dir, candidate), join(dir, eml));
      present.delete(candidate);
      present.add(eml);
      finished = true;
      break;
    }
  }
  return finished;
}

/** The envelope at `path` if it is whole, names a CRC, and was written before `cutoff`. */
async function readEnvelope(path: string, cutoff: number): Promise<EnvelopeRecord | null> {
  const info = await stat(path).catch(() => null);
  if (!info?.isFile() || info.mtimeMs >= cutoff || info.size > MAX_ENVELOPE_BYTES) return null;
  try {
    const record = JSON.parse(await readFile(path, 'utf8')) as EnvelopeRecord;
    if (typeof record.id !== 'string' || !/^[\w.-]+$/.test(record.id)) return null;
    if (typeof record.bytes !== 'number' || typeof record.crc32 !== 'string') return null;
    return record;
  } catch {
    return null;
  }
}

/** Whether the file holds exactly the message the envelope describes (its size and CRC-32). */
async function matches(path: string, record: EnvelopeRecord): Promise<boolean> {
  const info = await stat(path).catch(() => null);
  if (!info?.isFile() || info.size !== record.bytes) return false;
  let crc = 0;
  try {
    for await (const chunk of createReadStream(path)) crc = crc32(chunk as Buffer, crc);
  } catch {
    return false;
  }
  return crc.toString(16).padStart(8, '0') === record.crc32;
}

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Remove what a crashed run left behind, when older than `olderThanMs`: `.part` files, and an
 * `<id>.json` whose `<id>.eml` is nowhere. Neither message was acknowledged: the provider still
 * has it. An envelope whose message a `deliver` run has already moved to `delivered/` or
 * `failed/` is kept (it follows its message there).
 */
export async function sweepStale(dir: string, olderThanMs: number): Promise<void> {
  const cutoff = Date.now() - olderThanMs;
  const names = await readdir(dir);
  const present = new Set(names);
  for (const name of names) {
    const temporary = name.startsWith('.') && name.endsWith('.part');
    const envelope = !name.startsWith('.') && name.endsWith('.json');
    if (!temporary && !envelope) continue;
    if (envelope) {
      const eml = `${name.slice(0, -'.json'.length)}.eml`;
      if (present.has(eml)) continue;
      const elsewhere = await Promise.all(
        ['delivered', 'failed'].map((sub) =>
          stat(join(dir, sub, eml)).then(
            () => true,
            () => false,
          ),
        ),
      );
      if (elsewhere.includes(true)) continue;
    }
    const path = join(dir, name);
    const info = await stat(path).catch(() => null);
    if (info?.isFile() && info.mtimeMs < cutoff) await unlink(path).catch(() => undefined);
  }
}
