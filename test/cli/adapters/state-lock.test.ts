/**
 * One run per --state file (cli/adapters/state-lock.ts): the lock names its holder, a second run
 * waits and then gives up naming it, a lock whose run cannot still be running is broken, and a
 * lock is never removed by anyone but its own run or a breaker that found it stale.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isStale, type LockHolder, StateLock } from '../../../cli/adapters/state-lock';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dequeue-state-lock-'));
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

let n = 0;
const stateFile = () => join(dir, `state-${++n}.json`);
const inAnHour = () => Date.now() + 3_600_000;

/** The pid of a process that has exited (and so cannot hold anything). */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '0']);
  await new Promise((resolve) => child.on('close', resolve));
  return child.pid!;
}

const holder = (fields: Partial<LockHolder>): LockHolder => ({
  pid: process.pid,
  host: hostname(),
  since: '2026-03-01T10:00:00.000Z',
  until: new Date(inAnHour()).toISOString(),
  ...fields,
});

describe('the state file lock', () => {
  it('names its holder (pid, host, since, until) and is gone once released', async () => {
    const file = stateFile();
    const lock = await StateLock.acquire(file, { until: inAnHour() });
    const held = JSON.parse(await readFile(`${file}.lock`, 'utf8'));
    expect(held).toMatchObject({ pid: process.pid, host: hostname() });
    expect(Date.parse(held.since)).toBeLessThanOrEqual(Date.now());
    await lock.release();
    await expect(readFile(`${file}.lock`)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('a second run waits, and gives up with an error naming the holder', async () => {
    const file = stateFile();
    const first = await StateLock.acquire(file, { until: inAnHour() });
    const waited: string[] = [];
    const started = Date.now();
    const second = StateLock.acquire(file, {
      until: inAnHour(),
      waitMs: 300,
      onWait: (who) => waited.push(who),
    });
    await expect(second).rejects.toThrow(
      new RegExp(
        `^${file.replace(/[.]/g, '\\.')}: in use by another run \\(pid ${process.pid} on ${hostname()}, since \\S+\\); waited 300 ms for it, nothing was sent$`,
      ),
    );
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
    expect(waited).toEqual([expect.stringMatching(/^pid \d+ on /)]);
    await first.release();
  });

  it('a second run that waits gets the lock as soon as the first releases it', async () => {
    const file = stateFile();
    const first = await StateLock.acquire(file, { until: inAnHour() });
    const second = StateLock.acquire(file, { until: inAnHour(), waitMs: 10_000 });
    setTimeout(() => void first.release(), 100);
    const lock = await second;
    await lock.release();
  });

  it('a lock left by a process that is gone (this host) is broken', async () => {
    const file = stateFile();
    await writeFile(`${file}.lock`, JSON.stringify(holder({ pid: await deadPid() })));
    const lock = await StateLock.acquire(file, { until: inAnHour(), waitMs: 0 });
    expect(JSON.parse(await readFile(`${file}.lock`, 'utf8')).pid).toBe(process.pid);
    await lock.release();
  });

  it("another host's lock is kept until its run's bound, and broken after it", async () => {
    const file = stateFile();
    const other = holder({ host: 'elsewhere.test', pid: 1 });
    await writeFile(`${file}.lock`, JSON.stringify(other));
    await expect(StateLock.acquire(file, { until: inAnHour(), waitMs: 0 })).rejects.toThrow(
      /in use by another run \(pid 1 on elsewhere\.test, since 2026-03-01T10:00:00\.000Z\)/,
    );
    await writeFile(
      `${file}.lock`,
      JSON.stringify({ ...other, until: new Date(Date.now() - 1000).toISOString() }),
    );
    const lock = await StateLock.acquire(file, { until: inAnHour(), waitMs: 0 });
    await lock.release();
  });

  it('a file in its place that is not a lock is never removed; the error says what to do', async () => {
    const file = stateFile();
    await writeFile(`${file}.lock`, 'something else');
    await expect(StateLock.acquire(file, { until: inAnHour(), waitMs: 0 })).rejects.toThrow(
      /not a dequeue lock .*remove it if no run is using/,
    );
    expect(await readFile(`${file}.lock`, 'utf8')).toBe('something else');
  });

  it('release never removes a lock that is not its own', async () => {
    const file = stateFile();
    const lock = await StateLock.acquire(file, { until: inAnHour() });
    const theirs = JSON.stringify(holder({ pid: 1, host: 'elsewhere.test' }));
    await writeFile(`${file}.lock`, theirs);
    await lock.release();
    expect(await readFile(`${file}.lock`, 'utf8')).toBe(theirs);
  });

  it('of many runs breaking one stale lock at once, exactly one holds it at a time', async () => {
    const file = stateFile();
    await writeFile(`${file}.lock`, JSON.stringify(holder({ pid: await deadPid() })));
    let holding = 0;
    let most = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        const lock = await StateLock.acquire(file, { until: inAnHour(), waitMs: 20_000 });
        most = Math.max(most, ++holding);
        await new Promise((r) => setTimeout(r, 5));
        holding--;
        await lock.release();
      }),
    );
    expect(most).toBe(1);
  });

  it('stale: past its bound anywhere, or its pid gone on this host', () => {
    const now = Date.parse('2026-03-01T12:00:00Z');
    const alive = () => true;
    const dead = () => false;
    const h = holder({ until: '2026-03-01T13:00:00Z' });
    expect(isStale(h, hostname(), now, alive)).toBe(false);
    expect(isStale(h, hostname(), now, dead)).toBe(true);
    expect(isStale({ ...h, host: 'elsewhere.test' }, hostname(), now, dead)).toBe(false);
    expect(isStale({ ...h, until: '2026-03-01T11:00:00Z' }, 'x', now, alive)).toBe(true);
  });
});
