/**
 * The heartbeat of a `deliver` lock (cli/adapters/mail-dir-lock.ts): a run that was stopped past
 * the bound and whose lock was broken meanwhile finds another run's lock at its next heartbeat; it
 * then takes no further message of that target and leaves that run's lock alone at its end.
 */
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { DeliverLocks, LOCK_NAME } from '../../../cli/adapters/mail-dir-lock';
import { tempDir } from '../../core/odmr/odmr-fixtures';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function targetDir(): Promise<string> {
  const dir = await tempDir('dequeue-lock-');
  cleanups.push(dir.remove);
  const target = join(dir.path, 'odmr');
  await mkdir(target);
  return target;
}

/** Polls `check` every 10 ms, at most 5 s: true once it holds. */
async function eventually(check: () => Promise<boolean>): Promise<boolean> {
  for (let i = 0; i < 500; i++) {
    if (await check()) return true;
    await sleep(10);
  }
  return false;
}

describe('the heartbeat of a deliver lock', () => {
  it('keeps the lock fresh while its run holds it', async () => {
    const dir = await targetDir();
    const locks = new DeliverLocks({ heartbeatMs: 20, staleMs: 1000 });
    cleanups.push(() => locks.releaseAll());
    expect(await locks.take(dir)).toBe(true);
    const made = (await stat(join(dir, LOCK_NAME))).mtimeMs;

    expect(await eventually(async () => (await stat(join(dir, LOCK_NAME))).mtimeMs > made)).toBe(
      true,
    );
  });

  it("a lock broken while its run was stopped: that run takes nothing more of the target and leaves the other's lock", async () => {
    const dir = await targetDir();
    const path = join(dir, LOCK_NAME);
    const stopped = new DeliverLocks({ heartbeatMs: 20, staleMs: 1000 });
    cleanups.push(() => stopped.releaseAll());
    expect(await stopped.take(dir)).toBe(true);
    // What another run leaves after breaking the silent lock and making its own.
    const theirs = JSON.stringify({
      pid: 4242,
      host: 'mx2',
      nonce: 'theirs',
      since: '2026-12-07T10:00:00.000Z',
    });
    await writeFile(path, theirs);

    expect(await eventually(async () => (await stopped.take(dir)) !== true)).toBe(true);
    expect(await stopped.heldBy(dir)).toMatch(/^another run \(pid 4242 on mx2, since /);
    await stopped.releaseAll();
    expect(await readFile(path, 'utf8')).toBe(theirs);
  });
});
