/**
 * Two `dequeue deliver` runs on one mail directory: every message delivered once; the lock of
 * each target (cli/adapters/mail-dir-lock.ts) broken when its run is gone, respected when it is
 * alive, and said once.
 */
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { mailDir, messageIdOf, server, where } from './mail-dir-delivery';
import { message } from './stored-mail';
import { runCli } from '../../support/cli-run';

describe('two dequeue deliver runs on one mail directory', () => {
  it('two runs at once: every message delivered, none twice', async () => {
    const messages = Array.from({ length: 30 }, (_, i) => message(i + 1));
    const root = await mailDir(messages);
    const mx = await server();
    const args = ['deliver', '--mail-dir', root, '--to', `smtp://127.0.0.1:${mx.port}`, '--json'];
    const [a, b] = await Promise.all([runCli(args), runCli(args)]);
    expect([a.status, b.status]).toEqual([0, 0]);
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
    const out = await runCli([
      'deliver',
      '--mail-dir',
      crashed,
      '--to',
      `smtp://127.0.0.1:${mx.port}`,
      '--json',
    ]);
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
    const left = await runCli([
      'deliver',
      '--mail-dir',
      live,
      '--to',
      `smtp://127.0.0.1:${mx.port}`,
      '--json',
    ]);
    expect(left.status).toBe(0);
    expect(left.json).toEqual([]);
    expect(left.stderr.match(/being delivered by another run/g)).toHaveLength(1);
    expect(left.stderr).toContain(`pid ${process.pid} on ${host}`);
    expect((await where(live)).waiting).toHaveLength(2);
    expect(mx.accepted).toHaveLength(2);
  });
});
