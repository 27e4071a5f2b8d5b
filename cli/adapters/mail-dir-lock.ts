/**
 * The lock a `deliver` run takes on one target of the mail directory (cli/adapters/mail-dir-store.ts
 * has the rules): `DIR/<target>/.deliver.lock`, created with O_EXCL before the target's first
 * message and removed at the end of the run, so that of two runs exactly one sends that target's
 * mail. A lock whose process is gone (same host, pid not alive) is broken by renaming it to a
 * name of our own and checking that what we took is the stale lock we read (its nonce), so that
 * two runs breaking it at once cannot both win.
 *
 * A live pid proves little: after a reboot or in a container (where every run is pid 1) the pid
 * of a crashed run is soon some other process's. So the run holding a lock shows it is alive by
 * its heartbeat: it sets the lock's mtime every LOCK_HEARTBEAT_MS. A lock not touched for
 * LOCK_STALE_MS is broken whatever its pid or host says. A run stopped that long (suspended)
 * finds its lock gone at its next heartbeat and takes no further message of that target; the one
 * in flight may then arrive twice, never be lost. The mtime is compared with this machine's
 * clock: on a directory shared between hosts, their clocks must agree within the bound.
 */
import { randomBytes } from 'node:crypto';
import { unlinkSync } from 'node:fs';
import { readFile, rename, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { DequeueError } from '../../lambda/core/errors';

export const LOCK_NAME = '.deliver.lock';
/** How often a run holding a lock shows it is alive (the lock's mtime). */
export const LOCK_HEARTBEAT_MS = 60_000;
/** A lock without a heartbeat for this long is broken, whatever its pid says. */
export const LOCK_STALE_MS = 10 * 60_000;

export interface DeliverLockOptions {
  /** Default LOCK_HEARTBEAT_MS (tests shorten both). */
  readonly heartbeatMs?: number;
  /** Default LOCK_STALE_MS. */
  readonly staleMs?: number;
}

interface LockRecord {
  readonly pid: number;
  readonly host: string;
  readonly nonce: string;
  readonly since: string;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class DeliverLocks {
  private readonly host = hostname();
  /** Per target directory: this run's lock on it (true), or who else holds it (a description). */
  private readonly locks = new Map<string, Promise<true | string>>();
  /** The lock files this run holds now, for releaseAllSync. */
  private readonly held = new Set<string>();
  /** The text of each lock this run wrote, per path: how its heartbeat knows it is still ours. */
  private readonly written = new Map<string, string>();
  /** The heartbeat of each lock this run holds, per path. */
  private readonly heartbeats = new Map<string, NodeJS.Timeout>();
  private readonly heartbeatMs: number;
  private readonly staleMs: number;

  constructor(options: DeliverLockOptions = {}) {
    this.heartbeatMs = options.heartbeatMs ?? LOCK_HEARTBEAT_MS;
    this.staleMs = options.staleMs ?? LOCK_STALE_MS;
  }

  /** This run's lock on `dir`, taken once: true when held, else who holds it. */
  take(dir: string): Promise<true | string> {
    let lock = this.locks.get(dir);
    if (!lock) {
      const path = join(dir, LOCK_NAME);
      lock = this.lock(path);
      lock
        .then((mine) => {
          if (mine !== true) return;
          this.held.add(path);
          this.beat(dir, path);
        })
        .catch(() => undefined);
      // A failure to create it (a full disk) is tried again with the next message.
      lock.catch(() => this.locks.delete(dir));
      this.locks.set(dir, lock);
    }
    return lock;
  }

  /** Who else holds `dir`, when another run does, else undefined. */
  async heldBy(dir: string): Promise<string | undefined> {
    const held = await this.locks.get(dir)?.catch(() => undefined);
    return typeof held === 'string' ? held : undefined;
  }

  /** Every lock this run holds, removed. */
  async releaseAll(): Promise<void> {
    this.stopBeating();
    await Promise.all(
      [...this.locks].map(async ([dir, lock]) => {
        const mine = (await lock.catch(() => null)) === true;
        // A lock taken just now started its heartbeat after the one above: stopped here.
        const beat = this.heartbeats.get(join(dir, LOCK_NAME));
        if (beat) clearInterval(beat);
        this.heartbeats.delete(join(dir, LOCK_NAME));
        if (mine && this.held.has(join(dir, LOCK_NAME))) {
          this.held.delete(join(dir, LOCK_NAME));
          await unlink(join(dir, LOCK_NAME)).catch(() => undefined);
        }
      }),
    );
    this.locks.clear();
  }

  /** The same, synchronously: for a process that exits at once (a second SIGINT). */
  releaseAllSync(): void {
    this.stopBeating();
    for (const path of this.held) {
      try {
        unlinkSync(path);
      } catch {
        // gone already, or the process exits anyway
      }
    }
    this.held.clear();
  }

  private stopBeating(): void {
    for (const timer of this.heartbeats.values()) clearInterval(timer);
    this.heartbeats.clear();
  }

  /**
   * Set the mtime of our lock on `dir` every heartbeat while it is ours. Found another run's (ours
   * was broken while this run was stopped): no further message of that target is taken here, and
   * the lock is not ours to remove.
   */
  private beat(dir: string, path: string): void {
    const ours = this.written.get(path);
    let beating = false;
    const timer = setInterval(() => {
      if (beating) return;
      beating = true;
      void readFile(path, 'utf8')
        .then(async (text) => {
          // Released meanwhile (the run's end): nothing left to say.
          if (this.heartbeats.get(path) !== timer) return;
          if (text !== ours) {
            clearInterval(timer);
            this.heartbeats.delete(path);
            this.held.delete(path);
            this.locks.set(dir, Promise.resolve(holder(text, path)));
            return;
          }
          const now = new Date();
          await utimes(path, now, now);
        })
        .catch((e: unknown) => {
          // Gone (broken and not re-made): not ours any more. Unreadable for now: the next beat.
          if ((e as NodeJS.ErrnoException).code !== 'ENOENT') return;
          if (this.heartbeats.get(path) !== timer) return;
          clearInterval(timer);
          this.heartbeats.delete(path);
          this.held.delete(path);
          this.locks.set(dir, Promise.resolve(`another run (${path} was broken)`));
        })
        .finally(() => {
          beating = false;
        });
    }, this.heartbeatMs);
    timer.unref();
    this.heartbeats.set(path, timer);
  }

  /** Take the lock: true when this run holds it now, else who holds it. */
  private async lock(path: string): Promise<true | string> {
    const mine: LockRecord = {
      pid: process.pid,
      host: this.host,
      nonce: randomBytes(8).toString('hex'),
      since: new Date().toISOString(),
    };
    let held = 'another run';
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        await writeFile(path, JSON.stringify(mine), { flag: 'wx', mode: 0o600 });
        this.written.set(path, JSON.stringify(mine));
        return true;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
          throw new DequeueError(
            'temporary',
            `cannot claim ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
            { cause: e },
          );
        }
      }
      const stale = await this.breakStale(path);
      if (typeof stale === 'string') {
        held = stale;
        break;
      }
    }
    return held;
  }

  /**
   * Remove a lock left by a crashed run (on this host with its pid gone; or anywhere, without a
   * heartbeat for the bound): true when removed, else who holds it.
   */
  private async breakStale(path: string): Promise<true | string> {
    const [text, info] = await Promise.all([
      readFile(path, 'utf8').catch(() => null),
      stat(path).catch(() => null),
    ]);
    if (text === null || info === null) return true; // released meanwhile: try again
    const silent = Date.now() - info.mtimeMs >= this.staleMs;
    let held: LockRecord;
    try {
      held = JSON.parse(text) as LockRecord;
    } catch {
      // Half-written by a run that is creating it right now (or crashed doing so): left alone
      // unless it has been so for longer than the bound.
      if (!silent) return `another run (${path} is being written)`;
      held = { pid: 0, host: '?', nonce: '', since: '?' };
    }
    const who = holder(text, path);
    const gone = held.host === this.host && !alive(held.pid);
    if (!gone && !silent) return who;
    const taken = `${path}.stale.${process.pid}.${randomBytes(4).toString('hex')}`;
    try {
      await rename(path, taken);
    } catch {
      return true; // someone else broke it first: try to create ours
    }
    const got = await readFile(taken, 'utf8').catch(() => '');
    if (got !== text) {
      // We took a live lock that another run made after breaking the stale one: give it back.
      await rename(taken, path).catch(() => undefined);
      return who;
    }
    await unlink(taken).catch(() => undefined);
    return true;
  }
}

/** Who holds a lock, from its text, for the "left to it" line. */
function holder(text: string, path: string): string {
  try {
    const held = JSON.parse(text) as LockRecord;
    return `another run (pid ${held.pid} on ${held.host}, since ${held.since}; ${path})`;
  } catch {
    return `another run (${path})`;
  }
}
