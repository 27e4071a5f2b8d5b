/**
 * The mail directory as a reader sees it: nothing but hidden temporary files until the commit,
 * then the message and its envelope, private to the user; nothing at all after an abort.
 */
import { randomBytes } from 'node:crypto';
import { watch } from 'node:fs';
import { mkdir, readdir, readFile, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createMailDirSink } from '../../../cli/adapters/mail-dir-sink';
import type { MailEnvelope } from '../../../lambda/core/ports';
import { tempDir } from '../../core/odmr/odmr-fixtures';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});
/** Resolves when a `.part` file appears in `dir` (the watch is set up before this returns). */
function partFileCreated(dir: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const watcher = watch(dir, (_event, name) => {
      if (!name?.endsWith('.part')) return;
      watcher.close();
      resolve();
    });
    watcher.on('error', reject);
    cleanups.push(async () => watcher.close());
  });
}

async function root(): Promise<string> {
  const t = await tempDir('dequeue-maildir-');
  cleanups.push(t.remove);
  return t.path;
}
const envelope = (id: string): MailEnvelope => ({
  id,
  mailFrom: '',
  rcptTo: ['b@customer.test'],
  receivedAt: '2024-05-06T07:08:09.000Z',
  provider: 'provider.test:366',
  target: 'isp',
  heloName: 'provider.test',
  tls: false,
  traceBytes: 10,
});
const visible = async (dir: string) =>
  (await readdir(join(dir, 'isp'))).filter((n) => !n.startsWith('.')).sort();

describe('mail directory sink', () => {
  it('shows nothing before the commit, then <id>.eml and <id>.json, private to the user', async () => {
    const dir = await root();
    const draft = await createMailDirSink(dir).begin(envelope('m1'));
    const data = randomBytes(3 * 1024 * 1024);
    for (let i = 0; i < data.length; i += 65536) await draft.write([data.subarray(i, i + 65536)]);
    expect(await visible(dir)).toEqual([]);
    expect(await readdir(join(dir, 'isp'))).toEqual(['.m1.eml.part', '.m1.json.part']);
    const stored = await draft.commit();
    expect(stored).toEqual({ id: 'm1', location: join(dir, 'isp', 'm1.eml'), bytes: data.length });
    expect(await readdir(join(dir, 'isp'))).toEqual(['m1.eml', 'm1.json']);
    expect((await readFile(join(dir, 'isp', 'm1.eml'))).equals(data)).toBe(true);
    expect(JSON.parse(await readFile(join(dir, 'isp', 'm1.json'), 'utf8'))).toMatchObject({
      version: 1,
      id: 'm1',
      mailFrom: '',
      bytes: data.length,
      message: 'm1.eml',
      traceBytes: 10,
    });
    expect((await stat(join(dir, 'isp', 'm1.eml'))).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, 'isp'))).mode & 0o777).toBe(0o700);
  });

  it('an abort before the commit leaves nothing, not even the temporary file', async () => {
    const dir = await root();
    const draft = await createMailDirSink(dir).begin(envelope('m2'));
    await draft.write([Buffer.from('half a message')]);
    await draft.abort();
    expect(await readdir(join(dir, 'isp'))).toEqual([]);
  });

  it('an abort after the commit withdraws the message (it was never acknowledged)', async () => {
    const dir = await root();
    const draft = await createMailDirSink(dir).begin(envelope('m3'));
    await draft.write([Buffer.from('whole')]);
    await draft.commit();
    await draft.abort();
    expect(await readdir(join(dir, 'isp'))).toEqual([]);
  });

  it('makes the writer wait once more than highWaterBytes are queued (memory stays bounded)', async () => {
    const dir = await root();
    const draft = await createMailDirSink(dir, { highWaterBytes: 1024 }).begin(envelope('m4'));
    let settled = false;
    const first = draft.write([Buffer.alloc(512)]);
    const second = draft.write([Buffer.alloc(2048), Buffer.alloc(2048)]);
    void second.then(() => (settled = true));
    await first;
    expect(settled).toBe(false);
    await second;
    await draft.commit();
    expect((await stat(join(dir, 'isp', 'm4.eml'))).size).toBe(4608);
  });

  it('removes temporary files a crashed run left behind, when they are old', async () => {
    const dir = await root();
    await createMailDirSink(dir)
      .begin(envelope('first'))
      .then((d) => d.abort());
    await writeFile(join(dir, 'isp', '.old.eml.part'), 'x');
    await writeFile(join(dir, 'isp', '.young.eml.part'), 'x');
    const old = new Date(Date.now() - 2 * 24 * 3600_000);
    await utimes(join(dir, 'isp', '.old.eml.part'), old, old);
    await createMailDirSink(dir)
      .begin(envelope('m5'))
      .then((d) => d.abort());
    expect(await readdir(join(dir, 'isp'))).toEqual(['.young.eml.part']);
  });

  it('MAIL opens the files under hidden names; a transaction abandoned before DATA leaves nothing', async () => {
    const dir = await root();
    const sink = createMailDirSink(dir);
    const kept = sink.transaction!({ mailFrom: 'a@origin.test', target: 'isp' });
    const dropped = sink.transaction!({ mailFrom: 'c@origin.test', target: 'isp' });
    await expect(kept.recipient('b@customer.test')).resolves.toEqual({ accepted: true });
    const draft = await kept.begin(envelope('m8'));
    await draft.write([Buffer.from('Subject: x\r\n\r\nhi\r\n')]);
    expect(await visible(dir)).toEqual([]);
    await dropped.abandon();
    await draft.commit();
    expect(await readdir(join(dir, 'isp'))).toEqual(['m8.eml', 'm8.json']);
    await kept.abandon();
    expect(await readdir(join(dir, 'isp'))).toEqual(['m8.eml', 'm8.json']);
  });

  it('a provider that keeps abandoning transactions stops making the disk create files at MAIL', async () => {
    const dir = await root();
    const sink = createMailDirSink(dir);
    const hidden = async () =>
      (await readdir(join(dir, 'isp')).catch(() => [] as string[])).filter((f) =>
        f.endsWith('.part'),
      );
    // The first ones open their files ahead, under names of their own (and remove them when
    // abandoned)... The opens run on libuv's thread pool: wait for the directory to say a file
    // was created (inotify), not for some number of event-loop turns.
    await mkdir(join(dir, 'isp'), { recursive: true });
    const createdAhead = partFileCreated(join(dir, 'isp'));
    const first = sink.transaction!({ mailFrom: 'loop@origin.test', target: 'isp' });
    await createdAhead;
    expect((await hidden()).length).toBeGreaterThan(0);
    await first.abandon();
    for (let i = 1; i < 16; i++)
      await sink.transaction!({ mailFrom: 'loop@origin.test', target: 'isp' }).abandon();
    expect(await hidden()).toEqual([]);
    // ...then MAIL opens nothing ahead: the message's files are opened at DATA, named by its id.
    const later = sink.transaction!({ mailFrom: 'real@origin.test', target: 'isp' });
    const draft = await later.begin(envelope('m10'));
    expect((await hidden()).every((f) => f.startsWith('.m10.'))).toBe(true);
    await draft.write([Buffer.from('Subject: x\r\n\r\nhi\r\n')]);
    await draft.commit();
    expect(await readdir(join(dir, 'isp'))).toEqual(['m10.eml', 'm10.json']);
  });

  it('a directory that cannot be used fails the message as temporary (the provider keeps it)', async () => {
    const dir = await root();
    await writeFile(join(dir, 'file'), 'not a directory');
    await expect(createMailDirSink(join(dir, 'file')).begin(envelope('m6'))).rejects.toMatchObject({
      kind: 'temporary',
      message: expect.stringMatching(/cannot store message m6/),
    });
    const tx = createMailDirSink(join(dir, 'file')).transaction!({ mailFrom: '', target: 'isp' });
    await expect(tx.begin(envelope('m9'))).rejects.toMatchObject({
      kind: 'temporary',
      message: expect.stringMatching(/cannot store message m9/),
    });
  });
});

describe('mail directory after a crash', () => {
  it('an envelope left without its message (a crash between the two renames) is removed when old; a complete pair is kept', async () => {
    const dir = await root();
    const draft = await createMailDirSink(dir).begin(envelope('kept'));
    await draft.write([Buffer.from('Subject: kept\r\n\r\nhi\r\n')]);
    await draft.commit();
    const old = new Date(Date.now() - 2 * 24 * 3600_000);
    await writeFile(join(dir, 'isp', 'orphan.json'), '{}');
    await utimes(join(dir, 'isp', 'orphan.json'), old, old);
    await utimes(join(dir, 'isp', 'kept.json'), old, old);
    await createMailDirSink(dir)
      .begin(envelope('m7'))
      .then((d) => d.abort());
    expect(await visible(dir)).toEqual(['kept.eml', 'kept.json']);
  });
});
