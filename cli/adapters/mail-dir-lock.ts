/**
 * The lock a `deliver` run takes on one target of the mail directory (cli/adapters/mail-dir-store.ts
 * has the rules): `DIR/<target>/.deliver.lock`, created with O_EXCL before the target's first
 * message and removed at the end of the run, so that of two runs exactly one sends that target's
 * mail. A lock whose process is gone (same host, pid not alive) is broken by renaming it to a
 * name of our own and checking that what we took is the stale lock we read (its nonce), so that
 * two runs breaking it at once cannot both win.
 */
import { randomBytes } from 'node:crypto';
import { unlinkSync } from 'node:fs';
import { readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { DequeueError } from '../../lambda/core/errors';

export const LOCK_NAME = '.deliver.lock';

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

  /** This run's lock on `dir`, taken once: true when held, else who holds it. */
  take(dir: string): Promise<true | string> {
    let lock = this.locks.get(dir);
    if (!lock) {
      const path = join(dir, LOCK_NAME);
      lock = this.lock(path);
      lock.then((mine) => mine === true && this.held.add(path)).catch(() => undefined);
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
    await Promise.all(
      [...this.locks].map(async ([dir, lock]) => {
        if ((await lock.catch(() => null)) === true) {
          this.held.delete(join(dir, LOCK_NAME));
          await unlink(join(dir, LOCK_NAME)).catch(() => undefined);
        }
      }),
    );
    this.locks.clear();
  }

  /** The same, synchronously: for a process that exits at once (a second SIGINT). */
  releaseAllSync(): void {
    for (const path of this.held) {
      try {
        unlinkSync(path);
      } catch {
        // gone already, or the process exits anyway
      }
    }
    this.held.clear();
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

  /** Remove a lock left by a crashed run on this host: true when removed, else who holds it. */
  private async breakStale(path: string): Promise<true | string> {
    const text = await readFile(path, 'utf8').catch(() => null);
    if (text === null) return true; // released meanwhile: try again
    let held: LockRecord;
    try {
      held = JSON.parse(text) as LockRecord;
    } catch {
      // Half-written by a run that is creating it right now (or crashed doing so): leave it.
      return `another run (${path} is being written)`;
    }
    const who = `another run (pid ${held.pid} on ${held.host}, since ${held.since}; ${path})`;
    if (held.host !== this.host || alive(held.pid)) return who;
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
