/**
 * The mail directory as `dequeue deliver` reads it (the layout is cli/adapters/mail-dir-sink.ts's):
 *
 *   DIR/<target>/<id>.eml, <id>.json          undelivered: the message and its envelope
 *   DIR/<target>/.deliver.lock                a running deliver holds this target (pid, host, nonce)
 *   DIR/<target>/.<id>.progress               final answers of earlier runs (some recipients done),
 *                                             DSNs sent (docs/bounces.md)
 *   DIR/<target>/delivered/<id>.eml, .json    every recipient accepted
 *   DIR/<target>/failed/<id>.eml, .json       some recipient refused for good (5xx)
 *   DIR/<target>/failed/<id>.replies.json     the server's answer for every recipient, the DSNs sent
 *
 * Claims: a run takes a target's lock before its first message, created with O_EXCL, so of two
 * runs exactly one gets it; the other leaves that target's mail alone (it is on its way, in
 * order, over the first run's connection). One lock per target and run, not per message: a lock
 * file cost four file-system calls per message, a third of deliver's time for small messages
 * (bench/deliver.ts). A lock whose process is gone (same host, pid not alive: a crashed run) is
 * broken by renaming it to a name of our own and checking that what we took is the stale lock we
 * read (its nonce), so that two runs breaking it at once cannot both win. A lock from another
 * host is never broken (a directory shared over NFS): remove it by hand once that run is gone.
 *
 * Reading (mail-dir-claim.ts, mail-dir-files.ts): the claim opens the message and, when it is
 * small (PREFETCH_BYTES), reads it whole, while the previous message is still on the wire; a
 * larger one is streamed from the open file.
 *
 * Marks: the `.eml` is renamed first (its leaving the top level takes the message out of the
 * undelivered set), then the `.json`; a crash between them leaves an envelope whose message is in
 * delivered/ or failed/, which the next listing moves after it. Marks are not fsynced one by one:
 * a mark lost in a crash only means the message is delivered again (a duplicate, never a loss);
 * close() fsyncs the directories once at the end of the run.
 */
import { constants } from 'node:fs';
import {
  access,
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  stat,
  unlink,
  writeFile,
} from 'node:fs/promises';
import { join } from 'node:path';
import { TARGET_NAME } from '../../lambda/core/config-names';
import { ConfigError, DequeueError } from '../../lambda/core/errors';
import { checkStoredEnvelope, unusableEnvelope } from '../../lambda/core/odmr/envelope-check';
import type { EnvelopeRecord } from '../../lambda/core/odmr/envelope-record';
import type {
  ClaimedMail,
  DsnRecord,
  MailStore,
  RecipientAnswer,
  StoredRef,
} from '../delivery/mail-store';
import { NO_PROGRESS, parseProgress, progressJson, repliesJson } from '../delivery/progress-record';
import { type FailureRecord, MailDirClaim, type MailDirMarks } from './mail-dir-claim';
import { fdClose, fdOpen, readSmall, readWhole } from './mail-dir-files';
import { type DeliverLockOptions, DeliverLocks } from './mail-dir-lock';
import { unreadableBecause } from '../file-errors';

/** A message up to this size is read whole when it is claimed; a larger one is streamed. */
const PREFETCH_BYTES = 256 * 1024;
const MESSAGE = /^([^.].*)\.eml$/;
const PROGRESS = /^\.(.+)\.progress$/;

const exists = (path: string) =>
  stat(path).then(
    () => true,
    () => false,
  );

export class MailDirStore implements MailStore, MailDirMarks {
  readonly name: string;
  private readonly touched = new Set<string>();
  private readonly made = new Set<string>();
  /** One lock per target directory, taken with its first message. */
  private readonly locks: DeliverLocks;
  /** `.<id>.progress` records seen by list() or written by this run, per target directory. */
  private readonly progress = new Map<string, Set<string>>();

  constructor(
    private readonly root: string,
    options: { readonly locks?: DeliverLockOptions } = {},
  ) {
    this.name = `mail directory ${root}`;
    this.locks = new DeliverLocks(options.locks);
  }

  async check(): Promise<void> {
    try {
      const info = await stat(this.root);
      if (!info.isDirectory())
        throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
      await access(this.root, constants.R_OK | constants.W_OK | constants.X_OK);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new ConfigError(
        '--mail-dir',
        '',
        `${this.root}: cannot deliver from there: ${
          code === 'ENOENT'
            ? 'no such directory: give the --mail-dir the runs store into (dequeue --mail-dir DIR)'
            : code === 'ENOTDIR'
              ? 'it is a file, not a directory: give the --mail-dir the runs store into'
              : code === 'EROFS'
                ? 'it is on a read-only file system (EROFS), and deliver moves and removes files there: mount it read-write'
                : code === 'EACCES' || code === 'EPERM'
                  ? `this user may not write there (${code}), and deliver moves and removes files there: run it as the user the runs store as`
                  : `${code ?? (e as Error).message} (deliver reads, moves and removes files there)`
        }`,
        { cause: e },
      );
    }
  }

  /** Every target folder: it stays once the target has stored mail (delivered/ is inside it). */
  async storedTargets(): Promise<{ names: string[]; lasting: true }> {
    const entries = await readdir(this.root, { withFileTypes: true });
    const names = entries
      .filter((e) => e.isDirectory() && TARGET_NAME.test(e.name))
      .map((e) => e.name)
      .sort();
    return { names, lasting: true };
  }

  async list(targets?: readonly string[]): Promise<StoredRef[]> {
    const names =
      targets ??
      (await readdir(this.root, { withFileTypes: true }))
        .filter((d) => d.isDirectory() && TARGET_NAME.test(d.name))
        .map((d) => d.name);
    const refs: StoredRef[] = [];
    for (const target of names) {
      const dir = join(this.root, target);
      const entries = await readdir(dir).catch((e: NodeJS.ErrnoException) => {
        if (e.code === 'ENOENT') return [] as string[];
        throw new DequeueError('temporary', `cannot read ${dir}: ${e.code ?? e.message}`, {
          cause: e,
        });
      });
      const present = new Set(entries);
      const progress = this.progressIn(dir);
      for (const entry of entries) {
        const m = MESSAGE.exec(entry);
        if (m) refs.push({ id: m[1]!, target });
        else if (
          entry.endsWith('.json') &&
          !entry.startsWith('.') &&
          !present.has(`${entry.slice(0, -5)}.eml`)
        )
          await this.followMessage(dir, entry.slice(0, -5));
        else {
          const p = PROGRESS.exec(entry);
          if (p) progress.add(p[1]!);
        }
      }
    }
    return refs.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : a.target < b.target ? -1 : 1));
  }

  private progressIn(dir: string): Set<string> {
    let set = this.progress.get(dir);
    if (!set) this.progress.set(dir, (set = new Set()));
    return set;
  }

  /** An envelope left behind by a crash between a mark's two renames goes where its message went. */
  private async followMessage(dir: string, id: string): Promise<void> {
    for (const sub of ['delivered', 'failed']) {
      if (await exists(join(dir, sub, `${id}.eml`))) {
        await rename(join(dir, `${id}.json`), join(dir, sub, `${id}.json`)).catch(() => undefined);
        return;
      }
    }
  }

  /** Who else holds this target, when another run does (for the "left to it" line), else undefined. */
  async heldBy(target: string): Promise<string | undefined> {
    return this.locks.heldBy(join(this.root, target));
  }

  async claim(ref: StoredRef): Promise<ClaimedMail | null> {
    const dir = join(this.root, ref.target);
    if ((await this.locks.take(dir)) !== true) return null;
    let file: number;
    try {
      file = await fdOpen(join(dir, `${ref.id}.eml`));
    } catch (e) {
      // Delivered and moved by an earlier run between our listing and our lock?
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new DequeueError(
        'temporary',
        `cannot read message ${ref.id} in ${dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}; it is left where it is`,
        { cause: e },
      );
    }
    try {
      const [{ envelope, problem }, progress] = await Promise.all([
        this.envelope(dir, ref),
        this.progressIn(dir).has(ref.id)
          ? readFile(join(dir, `.${ref.id}.progress`), 'utf8').then(
              parseProgress,
              () => NO_PROGRESS,
            )
          : NO_PROGRESS,
      ]);
      const size =
        typeof envelope.bytes === 'number'
          ? envelope.bytes
          : (await stat(join(dir, `${ref.id}.eml`))).size;
      const text = size <= PREFETCH_BYTES ? await readWhole(file, size) : null;
      this.touched.add(dir);
      return new MailDirClaim(this, ref, dir, envelope, progress, file, text, problem);
    } catch (e) {
      await fdClose(file);
      throw e;
    }
  }

  /**
   * The envelope, checked on read (envelope-check.ts): one that is not JSON or fails the check
   * comes with its `problem`, and the message goes to failed/ with it. Only a file that cannot be
   * read at all leaves the message where it is.
   */
  private async envelope(
    dir: string,
    ref: StoredRef,
  ): Promise<{ envelope: EnvelopeRecord; problem?: string }> {
    const path = join(dir, `${ref.id}.json`);
    let text: string;
    try {
      text = await readSmall(path);
    } catch (e) {
      throw new DequeueError(
        'temporary',
        `message ${ref.id} has no readable envelope (${path}: ${envelopeUnreadable(e)}); it is left where it is`,
        { cause: e },
      );
    }
    const unusable = (problem: string) => ({
      envelope: unusableEnvelope(ref.id, ref.target),
      problem: `${path}: ${problem}`,
    });
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch {
      return unusable('the envelope is not JSON');
    }
    const checked = checkStoredEnvelope(raw);
    return checked.ok ? { envelope: checked.envelope } : unusable(checked.problem);
  }

  /**
   * At the end of the run: the marks made durable (every directory they touched, fsynced once),
   * then this run's locks removed.
   */
  async close(): Promise<void> {
    const dirs = [...this.touched].flatMap((d) => [d, join(d, 'delivered'), join(d, 'failed')]);
    await Promise.all(
      dirs.map(async (d) => {
        const handle = await open(d, 'r').catch(() => null);
        if (!handle) return;
        await handle.sync().catch(() => undefined);
        await handle.close();
      }),
    );
    await this.locks.releaseAll();
  }

  /** A process exiting at once (a second signal): this run's locks removed, nothing else. */
  releaseSync(): void {
    this.locks.releaseAllSync();
  }

  /** Move the message and its envelope into `sub`: the .eml first (see the header). */
  async move(
    dir: string,
    id: string,
    sub: 'delivered' | 'failed',
    replies?: FailureRecord,
  ): Promise<void> {
    const to = join(dir, sub);
    if (!this.made.has(to)) {
      await mkdir(to, { recursive: true, mode: 0o700 });
      this.made.add(to);
    }
    if (replies) {
      const record = repliesJson(
        id,
        new Date(),
        replies.recipients,
        replies.notified,
        replies.reason,
      );
      await writeFile(join(to, `${id}.replies.json`), record, { mode: 0o600 });
    }
    try {
      await rename(join(dir, `${id}.eml`), join(to, `${id}.eml`));
    } catch (e) {
      throw new DequeueError(
        'temporary',
        `cannot move message ${id} to ${to}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}; it will be delivered again`,
        { cause: e },
      );
    }
    await rename(join(dir, `${id}.json`), join(to, `${id}.json`)).catch(() => undefined);
    const progress = this.progressIn(dir);
    if (progress.delete(id)) await unlink(join(dir, `.${id}.progress`)).catch(() => undefined);
  }

  async recordProgress(
    dir: string,
    id: string,
    answers: readonly RecipientAnswer[],
    notified: readonly DsnRecord[],
  ): Promise<void> {
    const path = join(dir, `.${id}.progress`);
    const temp = `${path}.${process.pid}.tmp`;
    // Not fsynced: a lost record only means those recipients get the message (or the DSN) again.
    await writeFile(temp, progressJson(answers, notified), { mode: 0o600 });
    await rename(temp, path);
    this.progressIn(dir).add(id);
  }
}

/**
 * A run renames the envelope into place before its message (mail-dir-sink.ts), so a visible
 * `.eml` without its `.json` was put there by something else, or the `.json` was removed.
 */
function envelopeUnreadable(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOENT')
    return 'no such file: a run writes it before the message, so this .eml was not stored by dequeue or its .json was removed; move the .eml out of the mail directory';
  return code ? unreadableBecause(e) : (e as Error).message;
}
