/**
 * SIGINT and SIGTERM to a `dequeue deliver` process: the message on the wire gets its answer and
 * its mark (never sent twice for the stop), no further message starts, the connection ends with
 * QUIT, the result line of what finished is printed, the mail directory's lock is removed, and
 * the exit status is 130 or 143. A second signal exits at once, the lock removed too; the message
 * whose answer never came stays undelivered.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createMailDirSink } from '../../cli/adapters/mail-dir-sink';
import { ScriptedMailServer } from '../../peers/scripted-mail-server';
import { tempDir } from '../core/odmr/odmr-fixtures';
import { files, Running } from '../support/signalled-process';
import { message, store } from './delivery/stored-mail';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Three stored messages of target `odmr`, and a server that holds the first one's final dot. */
async function setUp(): Promise<{
  root: string;
  server: ScriptedMailServer;
  onTheWire: Promise<void>;
  answer: () => void;
  args: string[];
}> {
  const dir = await tempDir('dequeue-deliver-stop-');
  cleanups.push(dir.remove);
  await store(createMailDirSink(dir.path), 'odmr', [message(1), message(2), message(3)]);
  let reached!: () => void;
  const onTheWire = new Promise<void>((resolve) => (reached = resolve));
  let answer!: () => void;
  const held = new Promise<void>((resolve) => (answer = resolve));
  const server = await new ScriptedMailServer({
    holdFinal: (n) => {
      if (n !== 0) return undefined;
      reached();
      return held;
    },
  }).start();
  cleanups.push(() => server.stop());
  cleanups.push(async () => answer());
  const args = [
    'deliver',
    '--mail-dir',
    dir.path,
    '--to',
    `smtp://127.0.0.1:${server.port}`,
    '--connections',
    '1',
    '--json',
  ];
  return { root: dir.path, server, onTheWire, answer, args };
}

const emls = async (path: string) =>
  (await readdir(path).catch(() => [] as string[])).filter((n) => n.endsWith('.eml')).length;

describe('a stopped deliver', () => {
  it('SIGINT with a message on the wire: its answer taken and marked, no further message, QUIT, lock removed; exit 130', async () => {
    const { root, server, onTheWire, answer, args } = await setUp();
    const run = new Running(args);
    await onTheWire;
    expect(await files(root)).toContain('odmr/.deliver.lock');
    run.signal('SIGINT');
    await run.said(/SIGINT: ending the sessions under way properly/);
    answer();
    expect(await run.exited).toBe(130);

    expect(run.results).toEqual([
      expect.objectContaining({ target: 'odmr', outcome: 'delivered', error: null }),
    ]);
    expect(server.accepted).toHaveLength(1);
    expect(server.lines.filter((l) => l.startsWith('MAIL FROM'))).toHaveLength(1);
    expect(server.lines.at(-1)).toBe('QUIT');
    expect(run.stderr).toMatch(
      /1 message\(s\) from .* 1 delivered, 0 deferred, 0 failed; stopped by SIGINT: 2 message\(s\) not started, left for the next run/,
    );
    // The one delivered moved, the two others still waiting, no lock, nothing else.
    expect(await emls(join(root, 'odmr', 'delivered'))).toBe(1);
    expect(await emls(join(root, 'odmr'))).toBe(2);
    expect((await files(root)).filter((f) => f.includes('lock') || /\.tmp|\.part/.test(f))).toEqual(
      [],
    );
  });

  it('SIGTERM twice with the answer never coming: exits at once, the lock removed, the message still undelivered; exit 143', async () => {
    const { root, server, onTheWire, args } = await setUp();
    const run = new Running(args);
    await onTheWire;
    run.signal('SIGTERM');
    await run.said(/SIGTERM: ending the sessions/);
    run.signal('SIGTERM');
    expect(await run.exited).toBe(143);
    expect(run.stderr).toMatch(/SIGTERM again: exiting at once/);
    expect(await files(root)).not.toContain('odmr/.deliver.lock');
    // No answer, no mark: all three still in the undelivered set, to be delivered next run.
    expect(server.accepted).toHaveLength(0);
    expect(await emls(join(root, 'odmr'))).toBe(3);
    expect(await emls(join(root, 'odmr', 'delivered'))).toBe(0);
  });
});
