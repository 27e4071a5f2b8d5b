/**
 * What a crashed run left in a mail directory (cli/adapters/mail-dir-sink.ts), dealt with when
 * the directory is next used to store mail.
 */
import { readdir, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Remove what a crashed run left behind, when older than `olderThanMs`: `.part` files, and an
 * `<id>.json` whose `<id>.eml` is nowhere (a crash between the two renames of a commit). Neither
 * message was acknowledged: the provider still has it. An envelope whose message a `deliver` run
 * has already moved to `delivered/` or `failed/` is kept (it follows its message there).
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
