/**
 * The mail directory's root (`--mail-dir DIR`), checked before anything is sent: created if
 * missing and writable (a run), or usable without changing anything (a dry run). Directories are
 * made so that they survive a crash: each new one is fsynced into its parent.
 */
import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { ConfigError } from '../../lambda/core/errors';
import type { MailSink } from '../../lambda/core/ports';
import { makeDirectory } from './durable-dirs';
import { createMailDirSink, type MailDirSinkOptions } from './mail-dir-sink';

/**
 * Why a mail directory cannot be used, in one line that names the path at fault and the fix, as
 * the state file's errors do (a bare errno told a person nothing: ENOENT for a read-only file
 * system, EEXIST for a file in the way).
 */
function unusable(root: string, path: string, e: unknown): ConfigError {
  const code = (e as NodeJS.ErrnoException).code;
  const what =
    code === 'ENOTDIR' || code === 'EEXIST'
      ? `${path} is a file, not a directory: give --mail-dir a directory (or move the file away)`
      : code === 'EROFS'
        ? `${path} is on a read-only file system (EROFS): give --mail-dir a directory on a writable one`
        : code === 'EACCES' || code === 'EPERM'
          ? `${path} is not writable by this user (${code}): give --mail-dir a directory this user owns, e.g. ~/.local/state/dequeue/mail`
          : code === 'ENOSPC'
            ? `the file system of ${path} is full (ENOSPC): free some space or give --mail-dir another directory`
            : code === 'ENOENT'
              ? `${path} cannot be created (ENOENT: this file system takes no new directories): give --mail-dir a directory on an ordinary file system`
              : `${path}: ${code ?? (e as Error).message}`;
  return new ConfigError('--mail-dir', '', `${root}: cannot store mail there: ${what}`, {
    cause: e,
  });
}

const pathOf = (e: unknown, fallback: string): string =>
  (e as NodeJS.ErrnoException).path ?? fallback;

/**
 * The CLI's `--mail-dir`, checked before anything is sent: created if missing, and writable, or
 * a ConfigError naming it (exit status 2, README "Signal your provider from a laptop").
 */
export async function openMailDir(
  root: string,
  options: MailDirSinkOptions = {},
): Promise<MailSink> {
  try {
    await makeDirectory(root);
  } catch (e) {
    throw unusable(root, pathOf(e, root), e);
  }
  try {
    await access(root, constants.W_OK | constants.X_OK);
  } catch (e) {
    throw unusable(root, root, e);
  }
  return createMailDirSink(root, options);
}

/**
 * A dry run's check of --mail-dir for ATRN: usable without changing anything, i.e. writable if it
 * exists, else creatable in its nearest existing parent. A ConfigError (exit status 2) otherwise.
 */
export async function checkMailDir(root: string): Promise<void> {
  let dir = resolve(root);
  for (;;) {
    const info = await stat(dir)
      .catch((e: NodeJS.ErrnoException) =>
        e.code === 'ENOENT' || e.code === 'ENOTDIR' ? null : Promise.reject(e),
      )
      .catch((e: unknown) => {
        throw unusable(root, dir, e);
      });
    if (info) {
      if (!info.isDirectory()) throw unusable(root, dir, { code: 'ENOTDIR' });
      try {
        await access(dir, constants.W_OK | constants.X_OK);
      } catch (e) {
        throw unusable(root, dir, e);
      }
      return;
    }
    const parent = dirname(dir);
    if (parent === dir) throw unusable(root, dir, { code: 'ENOENT' });
    dir = parent;
  }
}
