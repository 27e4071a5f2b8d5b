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
 * The CLI's `--mail-dir`, checked before anything is sent: created if missing, and writable, or
 * a ConfigError naming it (exit status 2, README "Signal your provider from a laptop").
 */
export async function openMailDir(
  root: string,
  options: MailDirSinkOptions = {},
): Promise<MailSink> {
  try {
    await makeDirectory(root);
    await access(root, constants.W_OK | constants.X_OK);
  } catch (e) {
    throw new ConfigError(
      '--mail-dir',
      '',
      `${root}: cannot store mail there (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
      { cause: e },
    );
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
      .catch((e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? null : Promise.reject(e)))
      .catch((e: NodeJS.ErrnoException) => {
        throw new ConfigError(
          '--mail-dir',
          '',
          `${root}: cannot store mail there (${e.code ?? e.message})`,
          { cause: e },
        );
      });
    if (info) {
      if (!info.isDirectory())
        throw new ConfigError(
          '--mail-dir',
          '',
          `${root}: cannot store mail there (${dir} is not a directory)`,
        );
      try {
        await access(dir, constants.W_OK | constants.X_OK);
      } catch (e) {
        throw new ConfigError(
          '--mail-dir',
          '',
          `${root}: cannot store mail there (${dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
          { cause: e },
        );
      }
      return;
    }
    const parent = dirname(dir);
    if (parent === dir)
      throw new ConfigError(
        '--mail-dir',
        '',
        `${root}: cannot store mail there (no existing parent)`,
      );
    dir = parent;
  }
}
