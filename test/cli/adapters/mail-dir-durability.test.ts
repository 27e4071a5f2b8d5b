/**
 * What a crash would forget, observed where it is decided: which directories the mail directory
 * fsyncs. A new directory's entry is durable only once its parent is synced (fsync(2)), so a
 * message fsynced into a directory that was just created is lost with it unless the parent is.
 * The file system calls are watched (not replaced) through a wrapped `node:fs/promises`.
 */
import { mkdir, realpath } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { openMailDir } from '../../../cli/adapters/mail-dir-root';
import { createMailDirSink } from '../../../cli/adapters/mail-dir-sink';
import type { MailEnvelope } from '../../../lambda/core/ports';
import { tempDir } from '../../core/odmr/odmr-fixtures';

const synced: string[] = [];

vi.mock('node:fs/promises', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs/promises')>();
  const open: typeof fs.open = async (...args: Parameters<typeof fs.open>) => {
    const handle = await fs.open(...args);
    const sync = handle.sync.bind(handle);
    handle.sync = async () => {
      await sync();
      synced.push(String(args[0]));
    };
    return handle;
  };
  return { ...fs, default: { ...fs, open }, open };
});

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  synced.length = 0;
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
