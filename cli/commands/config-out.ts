/**
 * `config pull --out FILE`: the deployed document written whole or not at all. The place is
 * checked before SSM is read (a missing directory, a directory given as the file, a read-only
 * file), and a write that fails anyway leaves no temporary file behind: it would hold the deployed
 * configuration. Each failure is a ConfigError naming the file and what to do (exit 2).
 */
import { open, rename, stat, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ConfigError } from '../../lambda/core/errors';

function outError(file: string, e: unknown): ConfigError {
  const code = (e as NodeJS.ErrnoException).code;
  const dir = dirname(file);
  const what =
    code === 'ENOENT' || code === 'ENOTDIR'
      ? `the directory ${dir} does not exist: create it (mkdir -p ${dir}) or give --out a file in a directory that exists`
      : code === 'EISDIR'
        ? 'is a directory: give --out a file name'
        : code === 'EACCES' || code === 'EPERM' || code === 'EROFS'
          ? `the directory ${dir} is not writable here (${code}): give --out a file in a directory this user can write`
          : `cannot be written (${code ?? (e as Error).message})`;
  return new ConfigError(file, '', `--out: ${what}; nothing was written`, { cause: e });
}

/** Before anything is read from SSM: a place the document can be written to. */
export async function checkOutFile(file: string): Promise<void> {
  const existing = await stat(file).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return undefined;
    throw outError(file, e);
  });
  if (existing?.isDirectory()) throw outError(file, Object.assign(new Error(), { code: 'EISDIR' }));
  // A file its owner made read-only is not replaced, even by a user (root) who could.
  if (existing && (existing.mode & 0o222) === 0)
    throw new ConfigError(
      file,
      '',
      `--out: is read-only: make it writable (chmod u+w ${file}) or give --out another file; nothing was written`,
    );
  const dir = await stat(dirname(file)).catch((e: unknown) => {
    throw outError(file, e);
  });
  if (!dir.isDirectory()) throw outError(file, Object.assign(new Error(), { code: 'ENOTDIR' }));
}

/** Write `text` to a temporary name beside `file`, flush it, and rename it over `file`. */
export async function writeOutFile(file: string, text: string): Promise<void> {
  const temp = `${file}.${process.pid}.tmp`;
  try {
    const handle = await open(temp, 'w', 0o600);
    try {
      await handle.writeFile(text);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, file);
  } catch (e) {
    await unlink(temp).catch(() => undefined);
    throw outError(file, e);
  }
}
