/**
 * One run per `--state` file: `FILE.lock` names the run that holds it (pid, host, since, and the
 * time by which that run is bound to have ended). Two runs on one file at once would both read
 * cycle N and both write N+1, and both signal what is due in it (8 runs at once were seen to count
 * cycles 1, 2, 3, 3, 3, 3, 3, 4); with the lock the second run waits for the first, briefly, and
 * then gives up with exit 2 and a line naming the holder.
 *
 * Taking it: the record is written whole to a name of our own and linked to `FILE.lock` (link(2)
 * fails when the name exists), so the lock never exists half-written and exactly one of two runs
 * gets it.
 *
 * A lock is stale when its run cannot still be running: on this host and its pid is gone (a run
 * killed with SIGKILL, a machine that lost power), or past the `until` its run gave (every run is
 * bound by --max-run-seconds). Breaking it must not remove a live lock that another run created
 * after breaking the same stale one: only a run holding `FILE.lock.break` (taken the same way,
 * held for the few milliseconds of a check) removes a lock, and only after reading it again under
 * it. A `.break` older than BREAK_STALE_MS was left by a run that died breaking: it is removed.
 */
import { randomBytes } from 'node:crypto';
import { unlinkSync } from 'node:fs';
import { link, readFile, stat, unlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { ConfigError } from '../../lambda/core/errors';

/** How long a run waits for another run's lock on the same state file before exit 2. */
export const STATE_LOCK_WAIT_MS = 15_000;
/** A `.break` lock this old was left by a run that died in the middle of breaking a lock. */
const BREAK_STALE_MS = 10_000;
/** Bounds of the pause between two tries while another run holds the lock. */
const RETRY_MIN_MS = 20;
const RETRY_MAX_MS = 250;

export interface LockHolder {
  readonly pid: number;
  readonly host: string;
  /** ISO 8601: when it took the lock. */
  readonly since: string;
  /** ISO 8601: when its run is bound to have ended (its --max-run-seconds); past it, stale. */
  readonly until: string;
}

export interface StateLockOptions {
  /** Epoch ms by which this run will have ended (written into the lock as `until`). */
  readonly until: number;
  /** How long to wait for a live holder; default STATE_LOCK_WAIT_MS. */
  readonly waitMs?: number;
  readonly now?: () => number;
  /** Told once when the lock is held by another run and this one starts waiting. */
  readonly onWait?: (holder: string) => void;
}

/** Whether `holder` cannot still be running, seen from this host at `now`. */
export function isStale(holder: LockHolder, host: string, now: number, alive = pidAlive): boolean {
  if (Date.parse(holder.until) < now) return true;
  return holder.host === host && !alive(holder.pid);
}

/** What the operator reads about a holder: "pid 1234 on mx1, since 2026-...". */
export function describeHolder(holder: LockHolder): string {
  return `pid ${holder.pid} on ${holder.host}, since ${holder.since}`;
}

function waited(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${Math.round(ms / 1000)} s`;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: it exists, it is another user's.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function parseHolder(text: string): LockHolder | null {
  try {
    const v = JSON.parse(text) as Partial<LockHolder>;
    if (
      Number.isSafeInteger(v.pid) &&
      typeof v.host === 'string' &&
      typeof v.since === 'string' &&
      typeof v.until === 'string' &&
      !Number.isNaN(Date.parse(v.until))
    )
      return v as LockHolder;
  } catch {
    // not a lock record
  }
  return null;
}

export class StateLock {
  private released = false;

  private constructor(
    readonly path: string,
    private readonly text: string,
  ) {}

  /**
   * Take the lock on `stateFile`, waiting up to `waitMs` while a live run holds it. Rejects with
   * a ConfigError naming the holder when it is still held then (the CLI's exit 2), or naming the
   * file when the lock cannot be written at all.
   */
  static async acquire(stateFile: string, options: StateLockOptions): Promise<StateLock> {
    const now = options.now ?? Date.now;
    const path = `${stateFile}.lock`;
    const host = hostname();
    const record: LockHolder = {
      pid: process.pid,
      host,
      since: new Date(now()).toISOString(),
      until: new Date(options.until).toISOString(),
    };
    const text = `${JSON.stringify(record)}\n`;
    const giveUpAt = now() + (options.waitMs ?? STATE_LOCK_WAIT_MS);
    let told = false;
    let pause = RETRY_MIN_MS;
    for (;;) {
      if (await linkNew(path, text, stateFile)) return new StateLock(path, text);
      const held = await readFile(path, 'utf8').catch(() => null);
      if (held === null) continue; // released in between: try again at once
      const holder = parseHolder(held);
      if (holder && isStale(holder, host, now())) {
        await breakStale(path, held, stateFile);
        continue;
      }
      const who = holder
        ? describeHolder(holder)
        : `a lock file that is not a dequeue lock (${path}: remove it if no run is using ${stateFile})`;
      if (now() >= giveUpAt) {
        throw new ConfigError(
          stateFile,
          '',
          `in use by another run (${who}); waited ${waited(options.waitMs ?? STATE_LOCK_WAIT_MS)} for it, nothing was sent`,
        );
      }
      if (!told) {
        told = true;
        options.onWait?.(who);
      }
      // Jittered, so that runs waiting together do not retry in lock step.
      await new Promise((resolve) =>
        setTimeout(resolve, Math.min(pause * (0.5 + Math.random()), giveUpAt - now())),
      );
      pause = Math.min(pause * 2, RETRY_MAX_MS);
    }
  }

  /** Remove the lock, if it is still ours (never another run's). Idempotent. */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    const held = await readFile(this.path, 'utf8').catch(() => null);
    if (held === this.text) await unlink(this.path).catch(() => undefined);
  }

  /** The same, synchronously: for a process that exits at once (a second SIGINT). */
  releaseSync(): void {
    if (this.released) return;
    this.released = true;
    try {
      unlinkSync(this.path);
    } catch {
      // gone already
    }
  }
}

/** Create `path` holding `text`, complete from its first moment: false when it exists. */
async function linkNew(path: string, text: string, stateFile: string): Promise<boolean> {
  const temp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}`;
  try {
    await writeFile(temp, text, { flag: 'wx', mode: 0o600 });
    await link(temp, path);
    return true;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    throw new ConfigError(
      stateFile,
      '',
      `cannot take the lock ${path} (${code ?? (e as Error).message}): give --state a file in a writable directory`,
      { cause: e },
    );
  } finally {
    await unlink(temp).catch(() => undefined);
  }
}

/**
 * Remove the stale lock `seen`, under `.break`: read again there, it is removed only if it is still
 * the stale one. When another run is breaking it already, this one waits a moment and looks again.
 */
async function breakStale(path: string, seen: string, stateFile: string): Promise<void> {
  const breaker = `${path}.break`;
  if (!(await linkNew(breaker, `${process.pid}\n`, stateFile))) {
    // Another run is breaking it now, or died doing so long ago.
    const age = await stat(breaker).then(
      (s) => Date.now() - s.mtimeMs,
      () => 0,
    );
    if (age > BREAK_STALE_MS) await unlink(breaker).catch(() => undefined);
    await new Promise((resolve) => setTimeout(resolve, RETRY_MIN_MS));
    return;
  }
  try {
    const again = await readFile(path, 'utf8').catch(() => null);
    if (again === seen) await unlink(path).catch(() => undefined);
  } finally {
    await unlink(breaker).catch(() => undefined);
  }
}
