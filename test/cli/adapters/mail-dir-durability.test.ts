/**
 * What a crash would forget, observed where it is decided: which directories the mail directory
 * fsyncs. A new directory's entry is durable only once its parent is synced (fsync(2)), so a
 * message fsynced into a directory that was just created is lost with it unless the parent is.
 * The file system calls are watched (not replaced) through a wrapped `node:fs/promises`.
 */
import { constants } from 'node:fs';
import { mkdir, realpath } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { openMailDir } from '../../../cli/adapters/mail-dir-root';
import { createMailDirSink } from '../../../cli/adapters/mail-dir-sink';
import type { MailEnvelope } from '../../../lambda/core/ports';
import { tempDir } from '../../core/odmr/odmr-fixtures';

const synced: string[] = [];
/** Renames and fsyncs in the order they were done: `rename <to>`, `sync <path>` (at its start and end). */
const events: string[] = [];

vi.mock('node:fs/promises', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs/promises')>();
  const open: typeof fs.open = async (...args: Parameters<typeof fs.open>) => {
    const handle = await fs.open(...args);
    const flags = args[1];
    const dsync = typeof flags === 'number' && (flags & constants.O_DSYNC) !== 0;
    for (const method of ['write', 'writev'] as const) {
      const original = (handle[method] as (...a: unknown[]) => Promise<unknown>).bind(handle);
      (handle as unknown as Record<string, unknown>)[method] = async (...a: unknown[]) => {
        const result = await original(...a);
        events.push(`${dsync ? 'dsync-write' : 'write'} ${String(args[0])}`);
        return result;
      };
    }
    const sync = handle.sync.bind(handle);
    handle.sync = async () => {
      events.push(`sync start ${String(args[0])}`);
      await sync();
      synced.push(String(args[0]));
      events.push(`sync ${String(args[0])}`);
    };
    return handle;
  };
  const rename: typeof fs.rename = async (from, to) => {
    await fs.rename(from, to);
    events.push(`rename ${String(to)}`);
  };
  return { ...fs, default: { ...fs, open, rename }, open, rename };
});

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  synced.length = 0;
  events.length = 0;
  for (const c of cleanups.splice(0)) await c();
});

const envelope = (id: string, target = 'isp'): MailEnvelope => ({
  id,
  mailFrom: '',
  rcptTo: ['b@customer.test'],
  receivedAt: '2024-05-06T07:08:09.000Z',
  provider: 'provider.test:366',
  target,
  heloName: 'provider.test',
  tls: false,
  traceBytes: 0,
});

describe('mail directory: a crash right after our 250 forgets nothing', () => {
  it('a new --mail-dir and its DIR/<target> are fsynced into their parents before the first message is acknowledged', async () => {
    const t = await tempDir('dequeue-durable-');
    cleanups.push(t.remove);
    const base = await realpath(t.path);
    const root = join(base, 'new', 'mail');
    const sink = await openMailDir(root);
    const draft = await sink.begin(envelope('m1'));
    await draft.write([Buffer.from('Subject: x\r\n\r\nhi\r\n')]);
    await draft.commit();
    expect(synced).toEqual(
      expect.arrayContaining([base, join(base, 'new'), root, join(root, 'isp')]),
    );
  });

  it('an existing directory costs no extra fsync', async () => {
    const t = await tempDir('dequeue-durable-');
    cleanups.push(t.remove);
    const base = await realpath(t.path);
    await mkdir(join(base, 'isp'));
    const draft = await createMailDirSink(base).begin(envelope('m2'));
    await draft.commit();
    expect(synced.filter((p) => p === base)).toEqual([]);
  });
});

describe('mail directory: the renames after each 250 are made durable', () => {
  /** Whether a directory fsync of `dir` started after `event` and ended. */
  const syncedAfter = (event: string, dir: string): boolean => {
    const at = events.indexOf(event);
    const start = events.indexOf(`sync start ${dir}`, at);
    return at >= 0 && start > at && events.indexOf(`sync ${dir}`, start) > start;
  };

  it("by the next message's fsync at MAIL, and the last one's when the session settles: one directory fsync a message", async () => {
    const t = await tempDir('dequeue-durable-');
    cleanups.push(t.remove);
    const base = await realpath(t.path);
    const dir = join(base, 'isp');
    const sink = createMailDirSink(base);
    const ids = ['m1', 'm2', 'm3'];
    for (const id of ids) {
      const draft = await sink.transaction!({ mailFrom: '', target: 'isp' }).begin(envelope(id));
      await draft.write([Buffer.from(`Subject: ${id}\r\n\r\nhi\r\n`)]);
      await draft.commit();
    }
    // Each message's renames are covered by the fsync the next message's MAIL made.
    for (const id of ids.slice(0, -1))
      expect(syncedAfter(`rename ${dir}/${id}.eml`, dir)).toBe(true);
    expect(syncedAfter(`rename ${dir}/m3.eml`, dir)).toBe(false);
    await sink.settle!('isp');
    for (const id of ids) {
      expect(syncedAfter(`rename ${dir}/${id}.json`, dir), id).toBe(true);
      expect(syncedAfter(`rename ${dir}/${id}.eml`, dir), id).toBe(true);
    }
    // Three at MAIL (the hidden names, and the renames before them) and one at the end.
    expect(synced.filter((p) => p === dir)).toHaveLength(ids.length + 1);
    // A session that stored nothing more costs nothing.
    await sink.settle!('isp');
    await sink.settle!('other');
    expect(synced.filter((p) => p === dir)).toHaveLength(ids.length + 1);
  });
});

describe('mail directory: the message is durable before the 250, small or large', () => {
  it.each([
    ['a small message: written whole after the final dot, through an O_DSYNC descriptor', 2_000],
    ['a large one: streamed, then fsynced', 600_000],
  ])('%s', async (_case, size) => {
    const t = await tempDir('dequeue-durable-');
    cleanups.push(t.remove);
    const base = await realpath(t.path);
    const draft = await createMailDirSink(base).begin(envelope('m1'));
    const text = Buffer.alloc(size, 'x');
    for (let i = 0; i < size; i += 65536) await draft.write([text.subarray(i, i + 65536)]);
    await draft.commit();
    const part = join(base, 'isp', '.m1.eml.part');
    const writes = events.filter((e) => e.endsWith(` ${part}`) && e.includes('write'));
    if (size < 256 * 1024) expect(writes).toEqual([`dsync-write ${part}`]);
    else {
      expect(writes.length).toBeGreaterThan(0);
      // Every write before the fsync that the commit waited for.
      const lastWrite = events.lastIndexOf(writes.at(-1)!);
      expect(events.indexOf(`sync ${part}`, lastWrite)).toBeGreaterThan(lastWrite);
    }
  });
});
