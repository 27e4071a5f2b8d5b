/**
 * The cycle counter for the CLI: a small JSON file (`--state`), `{"cycle": N, "updatedAt": "..."}`.
 * Written to a temporary name, flushed and renamed, so a crash never leaves a torn file. Without
 * `--state` the counter lives in memory and every run is cycle 1 (every target due).
 */
import { open, readFile, rename, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ConfigError } from '../../lambda/core/errors';
import type { CycleCounter } from '../../lambda/core/ports';

export class StateFile implements CycleCounter {
  constructor(private readonly file: string) {}

  async peek(): Promise<number> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 0;
      throw new ConfigError(this.file, '', `cannot read the state file: ${(e as Error).message}`, { cause: e });
    }
    let cycle: unknown;
    try {
      cycle = (JSON.parse(text) as { cycle?: unknown }).cycle;
    } catch (e) {
      throw new ConfigError(this.file, '', 'is not valid JSON (delete it to start counting again from 0)', { cause: e });
    }
    if (!Number.isSafeInteger(cycle) || (cycle as number) < 0) {
      throw new ConfigError(this.file, 'cycle', 'must be a whole number ≥ 0 (delete the file to start again from 0)');
    }
    return cycle as number;
  }

  /**
   * Checked at start, before anything is sent: the counter is written as a new file beside the
   * state file and renamed over it, so what must be writable is the directory.
   */
  async checkWritable(): Promise<void> {
    const probe = `${this.file}.${process.pid}.check`;
    try {
      await (await open(probe, 'wx', 0o600)).close();
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      const dir = dirname(this.file);
      const what =
        code === 'ENOENT' || code === 'ENOTDIR'
          ? `the directory ${dir} does not exist: create it (mkdir -p ${dir}) or give --state a file in a directory that exists`
          : code === 'EACCES' || code === 'EPERM' || code === 'EROFS'
            ? `the directory ${dir} is not writable by this user (${code}): give --state a file in a directory this user owns, e.g. ~/.local/state/dequeue/state.json`
            : `cannot write beside it (${code ?? (e as Error).message}): give --state a file in a writable directory`;
      throw new ConfigError(this.file, '', `the cycle counter cannot be kept here: ${what}`, { cause: e });
    }
    await unlink(probe).catch(() => undefined);
  }

  async count(): Promise<{ cycle: number; counted: boolean }> {
    const cycle = (await this.peek()) + 1;
    const temp = `${this.file}.${process.pid}.tmp`;
    const handle = await open(temp, 'w', 0o600);
    try {
      await handle.writeFile(`${JSON.stringify({ cycle, updatedAt: new Date().toISOString() })}\n`);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, this.file);
    return { cycle, counted: true };
  }
}

export class MemoryCounter implements CycleCounter {
  private cycle = 0;
  async peek(): Promise<number> {
    return this.cycle;
  }
  async count(): Promise<{ cycle: number; counted: boolean }> {
    return { cycle: ++this.cycle, counted: true };
  }
}
