/**
 * The CLI's mail store (`--mail-dir DIR`): one file per message, its envelope as JSON beside it.
 *
 *   DIR/<target>/<id>.eml    the message as received (dot-unstuffed), our trace header first
 *   DIR/<target>/<id>.json   the envelope (lambda/core/odmr/envelope-record.ts)
 *   DIR/<target>/relayed/    the same for a message the relay took (settings.mail.relay): a
 *                            record, outside what `deliver` sends
 *
 * A reader never sees half a message: both are written under hidden temporary names
 * (`.<name>.eml.part`, `.<name>.json.part`), created and made durable in the directory (its fsync)
 * while the session reads the message; after the final dot the message is fsynced and the
 * envelope, which carries the message's size and CRC-32, written with O_DSYNC. Once both are
 * durable the message is whole on the disk under its hidden names, and the sink reports it
 * stored, which is what lets the session answer 250 (a directory the sink created is itself
 * fsynced into its parent first). Before that the envelope is renamed, then the message (its
 * appearance is the commit point for a reader); the directory's fsync that makes the renames
 * durable follows the 250, at the next message's MAIL or at the end of the session. A crash that undoes them leaves the message whole under its hidden
 * names, and the next run finishes it (mail-dir-recovery.ts). A reader should look for `*.eml`;
 * its `.json` is already there by then. Files are private to the user (0600, directories 0700).
 * What a crash at each step leaves: docs/odmr.md, tested by test/cli/adapters/mail-dir-crash.test.ts
 * (a process killed) and mail-dir-recovery.test.ts (a power cut).
 *
 * Writes are queued and flushed in batches (one writev per batch) so the disk sees large writes
 * while the session keeps reading; the queue is capped (highWaterBytes) and a full queue makes
 * the session wait, which makes the provider wait (TCP backpressure).
 *
 * Speed, without giving up any of the above (bench/odmr-receive.ts, docs/odmr.md). Every
 * file-system call is a trip through libuv's thread pool and back (never a synchronous call: a
 * blocked event loop stops every bound), so what matters is how many of them a message waits for:
 * - At MAIL (`transaction`) the two files and the directory are opened, named by the transaction
 *   (the message has no id yet), while RCPT and DATA go back and forth: DATA finds them open.
 *   An abandoned transaction closes and removes them. `begin` without a transaction opens them
 *   itself, named by the message's id.
 * - A small message is written in one writev at the commit (writes start at MIN_WRITE_BYTES),
 *   through a descriptor opened with O_DSYNC: that write is its fsync.
 * - After the final dot, one wait for the disk, not two: the message's write and fsync, the
 *   envelope's one O_DSYNC write, and the directory's fsync of the two hidden names (started at
 *   MAIL) at once; then the two renames. Closing the files comes after the answer, and the
 *   directory's fsync that makes the renames durable later still: the next message's MAIL makes
 *   one for its own hidden names, which covers them, or the session's end does
 *   (durable-dirs.ts DirectoryFsyncs): one directory fsync a message, not two.
 * - A large message goes to the disk as it arrives (an fdatasync every WRITEBACK_BYTES, not
 *   awaited), so the fsync after the final dot finds little left to write.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type {
  MailEnvelope,
  MailSink,
  MessageDraft,
  RecipientVerdict,
  SinkTransaction,
  TransactionStart,
} from '../../lambda/core/ports';
import { DirectoryFsyncs, makeDirectory } from './durable-dirs';
import { MailDirDraft } from './mail-dir-draft';
import { RESOLVED, Slot, storeError } from './mail-dir-slot';
import { recoverAndSweep } from './mail-dir-recovery';
import {
  admitBySpace,
  DEFAULT_MIN_FREE_BYTES,
  FreeSpaceGauge,
  type FreeSpaceReader,
  statfsFreeBytes,
} from './mail-dir-space';

export interface MailDirSinkOptions {
  /** Bytes queued for the disk before a write waits. Default 4 MiB. */
  readonly highWaterBytes?: number;
  /** Leftover `.part` files older than this are removed when a directory is first used. Default 24 h. */
  readonly staleAfterMs?: number;
  /**
   * A message a crash left durable and whole under its hidden names is finished when a directory
   * is first used, once older than this. Default 10 min (mail-dir-recovery.ts, COMMIT_BOUND_MS).
   */
  readonly recoverAfterMs?: number;
  /** Free space kept on the file system (mail-dir-space.ts); 0: no bound. Default 100 MiB. */
  readonly minFreeBytes?: number;
  /** Reads the file system's free space; default statfs. */
  readonly freeBytes?: FreeSpaceReader;
}

const DEFAULT_HIGH_WATER_BYTES = 4 * 1024 * 1024;
const DEFAULT_STALE_AFTER_MS = 24 * 60 * 60_000;
/**
 * Transactions abandoned before DATA after which MAIL no longer opens files ahead: a provider that
 * loops MAIL and RSET (or MAIL and a refused RCPT) would otherwise make the disk create and remove
 * two files a round for as long as the session lasts. After that, files are opened at DATA.
 */
const MAX_ABANDONED_AHEAD = 16;

export function createMailDirSink(root: string, options: MailDirSinkOptions = {}): MailSink {
  const highWater = options.highWaterBytes ?? DEFAULT_HIGH_WATER_BYTES;
  const staleAfter = options.staleAfterMs ?? DEFAULT_STALE_AFTER_MS;
  const prepared = new Map<string, Promise<void>>();
  const dirs = new Map<string, string>();
  const fsyncs = new Map<string, DirectoryFsyncs>();
  const fsyncsOf = (dir: string): DirectoryFsyncs => {
    let shared = fsyncs.get(dir);
    if (!shared) fsyncs.set(dir, (shared = new DirectoryFsyncs(dir)));
    return shared;
  };
  // Temporary names for files opened at MAIL, before the message has its id: unique to this sink
  // (random) and to the transaction (a counter).
  const nonce = randomBytes(6).toString('hex');
  let opened = 0;

  const prepare = (dir: string): Promise<void> => {
    let ready = prepared.get(dir);
    if (!ready) {
      ready = (async () => {
        await makeDirectory(dir);
        await recoverAndSweep(dir, staleAfter, options.recoverAfterMs);
      })();
      // A failure is retried by the next message rather than remembered.
      ready.catch(() => prepared.delete(dir));
      prepared.set(dir, ready);
    }
    return ready;
  };
  const dirOf = (target: string): string => {
    let dir = dirs.get(target);
    if (dir === undefined) dirs.set(target, (dir = join(root, target)));
    return dir;
  };
  const draft = async (slot: Slot, envelope: MailEnvelope): Promise<MessageDraft> => {
    try {
      await slot.ready;
    } catch (e) {
      throw storeError(envelope.id, slot.dir, e);
    }
    return new MailDirDraft(slot, envelope, highWater, gauge);
  };
  /** Transactions abandoned before DATA with their files opened ahead (MAX_ABANDONED_AHEAD). */
  let abandoned = 0;
  const minFree = options.minFreeBytes ?? DEFAULT_MIN_FREE_BYTES;
  // statfs once in a while rather than at every MAIL; a reader given in the options (a test's)
  // is asked every time.
  const gauge = new FreeSpaceGauge(statfsFreeBytes);
  const sink: MailSink = {
    /** MAIL: 452 4.3.1 while the disk is short of its free-space bound (mail-dir-space.ts). */
    admit: (mail) =>
      admitBySpace(
        root,
        minFree,
        options.freeBytes ?? ((dir) => gauge.freeBytes(dir, minFree + (mail.declaredSize ?? 0))),
        mail,
      ),
    begin(envelope: MailEnvelope): Promise<MessageDraft> {
      // A copy of mail the relay took is a record, not mail to deliver: DIR/<target>/relayed/.
      const dir = envelope.relayedTo
        ? join(dirOf(envelope.target), 'relayed')
        : dirOf(envelope.target);
      return draft(new Slot(dir, `.${envelope.id}`, prepare(dir), fsyncsOf(dir)), envelope);
    },
    /**
     * MAIL: the message's files and the directory are opened now, while RCPT and DATA go back
     * and forth, so that DATA finds them ready (creating a file is the slowest step of all on
     * some file systems). They have temporary names, hidden and swept like any `.part` file; an
     * abandoned transaction removes them.
     */
    transaction(mail: TransactionStart): SinkTransaction {
      if (mail.target === undefined || abandoned >= MAX_ABANDONED_AHEAD)
        return {
          recipient: () => ACCEPTED,
          begin: (envelope) => sink.begin(envelope),
          abandon: () => undefined,
        };
      const dir = dirOf(mail.target);
      const slot = new Slot(dir, `.${nonce}-${++opened}`, prepare(dir), fsyncsOf(dir));
      let taken = false;
      return {
        recipient: () => ACCEPTED,
        begin(envelope: MailEnvelope): Promise<MessageDraft> {
          if (taken || envelope.target !== mail.target) return sink.begin(envelope);
          taken = true;
          return draft(slot, envelope);
        },
        abandon(): Promise<void> {
          if (taken) return RESOLVED;
          taken = true;
          abandoned++;
          return slot.release();
        },
      };
    },
    /** The session is over: the renames of its last message made durable now (DirectoryFsyncs). */
    async settle(target: string): Promise<void> {
      const dir = dirOf(target);
      await Promise.all([dir, join(dir, 'relayed')].map((d) => fsyncs.get(d)?.flush() ?? RESOLVED));
    },
  };
  return sink;
}

const ACCEPTED: Promise<RecipientVerdict> = Promise.resolve({ accepted: true });
