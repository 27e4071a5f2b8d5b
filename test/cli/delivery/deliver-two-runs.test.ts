/**
 * Two `dequeue deliver` runs on one mail directory: every message delivered once; the lock of
 * each target (cli/adapters/mail-dir-lock.ts) broken when its run is gone or has had no
 * heartbeat for the bound (a live pid proves nothing: pid reuse, pid 1 in a container), respected
 * while its run is alive, and said once, with exit status 75.
 */
import { readdir, stat, utimes, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LOCK_STALE_MS } from '../../../cli/adapters/mail-dir-lock';
import { MailDirStore } from '../../../cli/adapters/mail-dir-store';
import { deliverTo, mailDir, messageIdOf, server, where } from './mail-dir-delivery';
import { message } from './stored-mail';
import { runCli } from '../../support/cli-run';

describe('two dequeue deliver runs on one mail directory', () => {
  it('two runs at once: every message delivered, none twice', async () => {
    const messages = Array.from({ length: 30 }, (_, i) => message(i + 1));
    const root = await mailDir(messages);
    const mx = await server();
    const args = ['deliver', '--mail-dir', root, '--to', `smtp://127.0.0.1:${mx.port}`, '--json'];
    const [a, b] = await Promise.all([runCli(args), runCli(args)]);
    // A run that left mail to the other says so in its exit status (75), and in its summary.
    for (const run of [a, b])
      expect(run.status).toBe(/left to another run/.test(run.stderr) ? 75 : 0);
    const ids = mx.accepted.map((x) => messageIdOf(x.text));
    expect(ids.sort()).toEqual(messages.map((m) => m.messageId).sort());
    expect(a.json.length + b.json.length).toBe(30);
    expect(await where(root)).toMatchObject({ waiting: [], failed: [] });
  });

  it("a lock left by a crashed run is broken; a live run's lock is respected, and said once", async () => {
    const host = (await import('node:os')).hostname();
    const crashed = await mailDir([message(1), message(2)]);
    await writeFile(
      join(crashed, 'odmr', '.deliver.lock'),
      JSON.stringify({ pid: 2 ** 22 + 17, host, nonce: 'x', since: '2026-11-30T09:00:00.000Z' }),
    );
    const mx = await server();
    const out = await deliverTo(crashed, mx.port, '--json');
    expect(out.status).toBe(0);
    expect(out.json).toHaveLength(2);
    expect(await where(crashed)).toMatchObject({ waiting: [], failed: [] });
    // The run removes its own lock at the end.
    expect((await readdir(join(crashed, 'odmr'))).filter((f) => f.includes('lock'))).toEqual([]);

    const live = await mailDir([message(3), message(4)]);
    await writeFile(
      join(live, 'odmr', '.deliver.lock'),
      JSON.stringify({ pid: process.pid, host, nonce: 'y', since: '2026-11-30T09:00:00.000Z' }),
    );
    const left = await deliverTo(live, mx.port, '--json');
    // Nothing failed, but this run delivered none of it: not a success (EX_TEMPFAIL).
    expect(left.status).toBe(75);
    expect(left.stderr).toMatch(/: 0 delivered, 0 deferred, 0 failed; 2 left to another run/);
    expect(left.json).toEqual([]);
    expect(left.stderr.match(/being delivered by another run/g)).toHaveLength(1);
    expect(left.stderr).toContain(`pid ${process.pid} on ${host}`);
    expect((await where(live)).waiting).toHaveLength(2);
    expect(mx.accepted).toHaveLength(2);
  });

  it('a lock whose pid is alive but that has had no heartbeat for the bound is broken (pid 1, pid reuse)', async () => {
    const host = hostname();
    const root = await mailDir([message(1), message(2)]);
    const lock = join(root, 'odmr', '.deliver.lock');
    // pid 1 is alive on any machine: in a container, every crashed run was pid 1.
    await writeFile(
      lock,
      JSON.stringify({ pid: 1, host, nonce: 'x', since: '2026-11-30T09:00:00.000Z' }),
    );
    const silentSince = new Date(Date.now() - LOCK_STALE_MS - 60_000);
    await utimes(lock, silentSince, silentSince);
    const mx = await server();

    const out = await deliverTo(root, mx.port, '--json');

    expect(out.status).toBe(0);
    expect(out.json.map((r) => r.outcome)).toEqual(['delivered', 'delivered']);
    expect(mx.accepted).toHaveLength(2);
    expect((await where(root)).waiting).toEqual([]);
  });

  it("a run's heartbeat keeps its lock: a second run past the bound leaves the mail to it", async () => {
    const root = await mailDir([message(1)]);
    let holding!: () => void;
    const held = new Promise<void>((r) => (holding = r));
    let letGo!: () => void;
    const slow = await server({
      holdFinal: () => (holding(), new Promise<void>((r) => (letGo = r))),
    });
    const other = await server();
    const locks = { heartbeatMs: 50, staleMs: 400 };
    const run = (port: number) =>
      runCli(['deliver', '--mail-dir', root, '--to', `smtp://127.0.0.1:${port}`, '--json'], {
        openMailStore: () => new MailDirStore(root, { locks }),
      });
    const first = run(slow.port);
    await held;
    const lock = join(root, 'odmr', '.deliver.lock');
    const since = (await stat(lock)).mtimeMs;
    // Past the bound since the lock was made: only its heartbeat keeps it.
    const beaten = async () => (await stat(lock)).mtimeMs >= since + 2 * locks.staleMs;
    for (let waits = 0; waits < 100 && !(await beaten()); waits++)
      await new Promise((r) => setTimeout(r, 50));
    expect(await beaten()).toBe(true);

    const second = await run(other.port);

    expect(second.status).toBe(75);
    expect(other.accepted).toEqual([]);
    letGo();
    expect(await first).toMatchObject({ status: 0, json: [{ outcome: 'delivered' }] });
    expect(slow.accepted).toHaveLength(1);
    // The run removed its lock, and no heartbeat is left behind.
    expect((await readdir(join(root, 'odmr'))).filter((f) => f.includes('lock'))).toEqual([]);
  });
});
